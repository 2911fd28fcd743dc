/**
 * ManifestBook: readOva's manifest and digest bookkeeping. It knows which
 * members were seen (and must be listed), which digests were computed for
 * them, which manifest lines were checked, and decides what to hash: before
 * the manifest arrives, `digestsBeforeManifest`; after, exactly what the
 * manifest names for that member.
 *
 *   adopt(text)              the manifest arrived: check every member seen so far
 *   noteMember(name, href)   a member is about to be read (hashed or not)
 *   algorithmsFor(name)      what to hash it with
 *   record(name, digests)    its digests, checked now if the manifest lists it
 *   wholeFileAlgorithm(href) a chunked file's whole-content digest, when listed
 *   finish(isChunked)        every line checked, every member covered
 */
import { P2vError } from '../../lib/errors.js';
import { parseManifest, type DigestAlgorithm } from '../manifest.js';
import { HINT_DAMAGED } from './read-errors.js';

const DEFAULT_DIGESTS: DigestAlgorithm[] = ['sha256', 'sha1'];

type Manifest = Map<string, { algorithm: DigestAlgorithm; hex: string }>;

export class ManifestBook {
  private manifest: Manifest | null = null;
  /** Digests computed so far, by member name (or href for a chunked file's whole content). */
  private readonly computed = new Map<string, Map<DigestAlgorithm, string>>();
  private readonly checked = new Set<string>();
  /** Every manifest line checked, in the order checked. */
  readonly verified: { name: string; algorithm: DigestAlgorithm }[] = [];
  /** Names that must be covered by the manifest: [member name, href of the file it is a chunk of]. */
  private readonly seen: [string, string | null][] = [];

  constructor(private readonly digestsBeforeManifest: DigestAlgorithm[] = DEFAULT_DIGESTS) {}

  get found(): boolean {
    return this.manifest !== null;
  }

  adopt(text: string): void {
    this.manifest = parseManifest(text);
    // Members already read were hashed on the way: check them now.
    for (const [name, href] of this.seen) this.requireCovered(name, href);
    for (const [name] of this.seen) if (this.manifest.has(name)) this.verify(name);
  }

  noteMember(name: string, href: string | null): void {
    this.seen.push([name, href]);
    if (this.manifest) this.requireCovered(name, href);
  }

  algorithmsFor(name: string): DigestAlgorithm[] {
    if (!this.manifest) return this.digestsBeforeManifest;
    const e = this.manifest.get(name);
    return e ? [e.algorithm] : [];
  }

  record(name: string, digests: Map<DigestAlgorithm, string>): void {
    this.computed.set(name, digests);
    if (this.manifest?.has(name)) this.verify(name);
  }

  wholeFileAlgorithm(href: string): DigestAlgorithm | undefined {
    return this.manifest?.get(href)?.algorithm;
  }

  /** At the end of the archive; `isChunked(name)` says whether a listed name is a chunked file's href. */
  finish(isChunked: (name: string) => boolean): void {
    if (!this.manifest) return;
    for (const name of this.manifest.keys()) {
      if (this.checked.has(name)) continue;
      if (this.computed.has(name) || isChunked(name)) this.verify(name);
      else
        throw new P2vError('BAD_MANIFEST', `the manifest lists ${name}, which is not in the OVA`, {
          hint: HINT_DAMAGED,
        });
    }
    for (const [name, href] of this.seen) this.requireCovered(name, href);
  }

  private requireCovered(name: string, href: string | null): void {
    const mf = this.manifest!;
    if (mf.has(name) || (href !== null && mf.has(href))) return;
    throw new P2vError('BAD_MANIFEST', `${name} is not in the manifest`, { hint: HINT_DAMAGED });
  }

  private verify(name: string): void {
    if (this.checked.has(name)) return;
    const want = this.manifest!.get(name)!;
    const have = this.computed.get(name)?.get(want.algorithm);
    const ALG = want.algorithm.toUpperCase();
    if (have === undefined) {
      throw new P2vError(
        'BAD_MANIFEST',
        `cannot check the ${ALG} of ${name}: the manifest came after it and ${ALG} was not computed`,
        {
          hint: 'put the manifest right after the descriptor, or list every chunk in it with SHA256 or SHA1',
        },
      );
    }
    if (have !== want.hex)
      throw new P2vError('BAD_MANIFEST', `${ALG} of ${name} does not match the manifest`, { hint: HINT_DAMAGED });
    this.checked.add(name);
    this.verified.push({ name, algorithm: want.algorithm });
  }
}
