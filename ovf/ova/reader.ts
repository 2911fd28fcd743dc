/**
 * readOva: check and unpack an OVA stream without ever holding a disk.
 *
 * The input (optionally gzip-compressed, as Ganeti writes ova.ova) is fed to
 * tar-stream's extract with backpressure; members are taken one at a time and
 * the next tar header is not parsed until the current member was consumed.
 *
 *   1st member  the .ovf descriptor: size capped, parsed by the injected
 *               parseDescriptor; it says which files to expect.
 *   .mf         the manifest, wherever it comes (ovftool: right after the
 *               descriptor; p2v-export: last). Digests of members that came
 *               before it are checked when it arrives, later ones at their end.
 *   .cert       read past: signatures are not checked (see docs/design-ova.md).
 *   others      a referenced file (href) or one chunk of it (href.NNNNNNNNN),
 *               handed to onFile as one content stream per file.
 *
 * Anything else is refused with a one-line P2vError naming the member:
 * BAD_OVA (hostile or malformed archive), BAD_MANIFEST (digest mismatch or
 * manifest gaps), TRUNCATED (input ended early, at any stage).
 */
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { P2vError } from '../../lib/errors.js';
import type { MachineDescription, OvfFile } from '../types.js';
import { parseManifest, type DigestAlgorithm } from '../manifest.js';
import { chunkName, parseChunkName } from './chunk-name.js';
import { TarTail } from './tar-tail.js';
import { MemberReader, HINT_HOSTILE, isSafeName, type Member } from './member-reader.js';
import { FileContent } from './file-content.js';
import { Hasher } from './hasher.js';
import { sniff } from './sniff.js';
import type { OvaReadOptions, OvaReadResult } from './types.js';

const DEFAULT_MAX_DESCRIPTOR = 4 * 1024 * 1024;
const DEFAULT_MAX_MANIFEST = 1024 * 1024;
const DEFAULT_DIGESTS: DigestAlgorithm[] = ['sha256', 'sha1'];
const ALL_DIGESTS: DigestAlgorithm[] = ['sha256', 'sha1', 'sha512'];

const HINT_DAMAGED = 'the OVA was damaged in transit or edited: discard what was imported and send it again';
const HINT_TRUNCATED = 'the sender stopped early: look at its error messages, then send the OVA again';

type Manifest = Map<string, { algorithm: DigestAlgorithm; hex: string }>;

export async function readOva(
  input: AsyncIterable<Buffer> | NodeJS.ReadableStream,
  opts: OvaReadOptions,
): Promise<OvaReadResult> {
  const session = new ReadSession(opts);
  return session.run(input as AsyncIterable<Buffer | string>);
}

class ReadSession {
  private readonly extract = tar.extract();
  private readonly tail = new TarTail();
  /** Set by the pump when reading or gunzipping the input failed; it explains the parser's failure. */
  private inputError: P2vError | null = null;
  private members!: MemberReader;

  private descriptorName: string | null = null;
  private machine: MachineDescription | null = null;
  private files = new Map<string, OvfFile>();
  private manifest: Manifest | null = null;
  private certificate: string | undefined;
  private readonly done = new Set<string>();

  /** Digests computed so far, by member name (or href for a chunked file's whole content). */
  private readonly computed = new Map<string, Map<DigestAlgorithm, string>>();
  private readonly checked = new Set<string>();
  private readonly verified: { name: string; algorithm: DigestAlgorithm }[] = [];
  /** Names that must be covered by the manifest: [member name, href of the file it is a chunk of]. */
  private readonly seen: [string, string | null][] = [];

  constructor(private readonly opts: OvaReadOptions) {}

  async run(input: AsyncIterable<Buffer | string>): Promise<OvaReadResult> {
    this.members = new MemberReader(this.extract, (e) => this.translate(e));
    const pump = this.pump(input);
    // Its failure is reported through the parser (and awaited below): never unhandled.
    pump.catch(() => undefined);
    try {
      for (;;) {
        const m = await this.members.next();
        if (!m) break;
        await this.member(m);
      }
      await pump;
      this.finish();
    } catch (e) {
      // Stop reading: the pump may be waiting on an input that never ends, so
      // it is not awaited; destroying the input releases it.
      this.extract.destroy();
      const destroy = (input as { destroy?: unknown }).destroy;
      if (typeof destroy === 'function') destroy.call(input);
      throw e;
    }
    return {
      machine: this.machine!,
      descriptorName: this.descriptorName!,
      verified: this.verified,
      manifestFound: this.manifest !== null,
      ...(this.certificate !== undefined ? { certificate: this.certificate } : {}),
    };
  }

  // --- input → (gunzip) → tar parser ---------------------------------------

  private async pump(input: AsyncIterable<Buffer | string>): Promise<void> {
    const extract = this.extract;
    let gunzip: ReturnType<typeof createGunzip> | null = null;
    try {
      const head = await sniff(input);
      if (head.first.length === 0) {
        throw new P2vError('BAD_OVA', 'not an OVA: the input is empty', { hint: HINT_TRUNCATED });
      }
      let bytes: AsyncIterable<Buffer> = head.all;
      if (head.first[0] === 0x1f && head.first[1] === 0x8b) {
        gunzip = createGunzip();
        // pipeline, not pipe: an input error must reach the gunzip stream we iterate.
        bytes = pipeline(Readable.from(head.all), gunzip, () => undefined);
      }
      for await (const buf of bytes) {
        if (extract.destroyed || extract.destroying) return;
        this.tail.update(buf);
        if (!extract.write(buf)) {
          await new Promise<void>((resolve) => {
            const go = () => {
              extract.off('drain', go);
              extract.off('close', go);
              resolve();
            };
            extract.on('drain', go);
            extract.on('close', go);
          });
        }
      }
      if (!extract.destroyed && !extract.destroying) extract.end(undefined);
    } catch (e) {
      this.inputError = this.inputFailure(e);
      extract.destroy(this.inputError);
      throw this.inputError;
    } finally {
      gunzip?.destroy();
    }
  }

  private inputFailure(e: unknown): P2vError {
    if (e instanceof P2vError) return e;
    const err = e as NodeJS.ErrnoException;
    if (err?.code === 'Z_BUF_ERROR' || /unexpected end of file/i.test(err?.message ?? '')) {
      return this.truncated(e);
    }
    if (typeof err?.code === 'string' && err.code.startsWith('Z_')) {
      return new P2vError('BAD_OVA', `the OVA's gzip compression is corrupt: ${err.message}`, {
        cause: e,
        hint: HINT_DAMAGED,
      });
    }
    return new P2vError('IO', `cannot read the OVA stream: ${err?.message ?? String(e)}`, {
      cause: e,
      hint: HINT_TRUNCATED,
    });
  }

  /** Turn a tar-stream or stream error into our one-line error. */
  private translate(e: unknown): P2vError {
    if (e instanceof P2vError) return e;
    if (this.inputError) return this.inputError;
    const msg = e instanceof Error ? e.message : String(e);
    // An entry stream is only destroyed under us when the parser died, and
    // with no input error and no bad header that means the input ended.
    if (/Unexpected end of data|premature close|Stream was destroyed/i.test(msg)) return this.truncated(e);
    if (/Invalid tar header|unknown format|Invalid header|exceeds max size/i.test(msg)) {
      const after = this.members?.lastName;
      if (!after) {
        return new P2vError('BAD_OVA', 'not an OVA: the input is neither a tar archive nor a gzip-compressed one', {
          cause: e,
          hint: 'give p2v-import the .ova file written by p2v-export or an OVF tool',
        });
      }
      return new P2vError('BAD_OVA', `corrupt tar header after member ${after}`, { cause: e, hint: HINT_DAMAGED });
    }
    return new P2vError('BAD_OVA', `cannot read the OVA: ${msg}`, { cause: e, hint: HINT_DAMAGED });
  }

  private truncated(cause?: unknown): P2vError {
    const cur = this.members?.current;
    const last = this.members?.lastName;
    const where = cur
      ? `in the middle of ${cur}`
      : last
        ? `inside the tar header after ${last}`
        : 'inside the first tar header';
    return new P2vError('TRUNCATED', `the OVA stream ends ${where}`, { cause, hint: HINT_TRUNCATED });
  }

  // --- members ---------------------------------------------------------------

  private async member(m: Member): Promise<void> {
    const lower = m.name.toLowerCase();
    if (this.descriptorName === null) return this.readDescriptor(m);
    if (lower.endsWith('.ovf')) {
      throw new P2vError('BAD_OVA', `the OVA holds two descriptors: ${this.descriptorName} and ${m.name}`, {
        hint: HINT_HOSTILE,
      });
    }
    if (lower.endsWith('.mf')) return this.readManifest(m);
    if (lower.endsWith('.cert')) {
      // Signature checking needs a trust store the staging host does not have;
      // integrity comes from the manifest, authenticity from the SSH channel.
      for await (const _ of this.data(m, null)) void _;
      this.certificate = m.name;
      return;
    }

    let file = this.files.get(m.name);
    let chunked = false;
    if (file) {
      if (file.chunkSize !== undefined) {
        throw new P2vError(
          'BAD_OVA',
          `${m.name} should come in chunks (${chunkName(m.name, 0)}, …): the descriptor gives it an ovf:chunkSize`,
          { hint: HINT_HOSTILE },
        );
      }
    } else {
      const c = parseChunkName(m.name);
      file = c ? this.files.get(c.href) : undefined;
      if (!c || !file) {
        throw new P2vError('BAD_OVA', `member ${m.name} is not referenced by the descriptor`, { hint: HINT_HOSTILE });
      }
      if (file.chunkSize === undefined) {
        throw new P2vError(
          'BAD_OVA',
          `member ${m.name} is a chunk, but the descriptor gives ${c.href} no ovf:chunkSize`,
          { hint: HINT_HOSTILE },
        );
      }
      if (this.done.has(c.href)) {
        throw new P2vError('BAD_OVA', `chunk ${m.name} comes after the end of ${c.href}`, { hint: HINT_HOSTILE });
      }
      if (c.index !== 0) {
        throw new P2vError('BAD_OVA', `chunk ${m.name} is out of order: expected ${chunkName(c.href, 0)}`, {
          hint: HINT_HOSTILE,
        });
      }
      chunked = true;
    }

    const content = new FileContent(this.fileBytes(file, m, chunked));
    await this.opts.onFile(file, content);
    // A consumer that stopped early still gets the digests and size checked.
    await content.drain();
    this.done.add(file.href);
  }

  private async readDescriptor(m: Member): Promise<void> {
    if (!/\.ovf$/i.test(m.name)) {
      throw new P2vError('BAD_OVA', `not an OVA: its first member ${m.name} is not an OVF descriptor (.ovf)`, {
        hint: 'an OVA must start with its .ovf descriptor; repack it with the descriptor first',
      });
    }
    const max = this.opts.maxDescriptorBytes ?? DEFAULT_MAX_DESCRIPTOR;
    if (m.size > max) {
      throw new P2vError('BAD_OVA', `descriptor ${m.name} is ${m.size} bytes, more than the ${max} allowed`, {
        hint: HINT_HOSTILE,
      });
    }
    const text = await this.readSmall(m, ALL_DIGESTS);
    let xml: string;
    try {
      xml = new TextDecoder('utf-8', { fatal: true }).decode(text).replace(/^\uFEFF/, '');
    } catch {
      throw new P2vError('BAD_OVF', `descriptor ${m.name} is not UTF-8 text`, { hint: HINT_DAMAGED });
    }
    let machine: MachineDescription;
    try {
      machine = this.opts.parseDescriptor(xml);
    } catch (e) {
      if (e instanceof P2vError) throw e;
      throw new P2vError('BAD_OVF', `cannot parse ${m.name}: ${e instanceof Error ? e.message : String(e)}`, {
        cause: e,
      });
    }
    for (const f of machine.files) {
      if (!isSafeName(f.href) || /^[a-z][a-z0-9+.-]*:/i.test(f.href)) {
        throw new P2vError(
          'BAD_OVF',
          `descriptor ${m.name} references an unsafe or external file: ${JSON.stringify(f.href)}`,
          { hint: HINT_HOSTILE },
        );
      }
      if (/\.(ovf|mf|cert)$/i.test(f.href)) {
        throw new P2vError(
          'BAD_OVF',
          `descriptor ${m.name} references ${f.href}, a name an OVA keeps for descriptors, manifests and certificates`,
          { hint: HINT_HOSTILE },
        );
      }
      if (this.files.has(f.href)) {
        throw new P2vError('BAD_OVF', `descriptor ${m.name} references ${f.href} twice`, { hint: HINT_HOSTILE });
      }
      this.files.set(f.href, f);
    }
    this.descriptorName = m.name;
    this.machine = machine;
  }

  private async readManifest(m: Member): Promise<void> {
    if (this.manifest)
      throw new P2vError('BAD_OVA', `the OVA holds two manifests (the second is ${m.name})`, { hint: HINT_HOSTILE });
    const max = this.opts.maxManifestBytes ?? DEFAULT_MAX_MANIFEST;
    if (m.size > max) {
      throw new P2vError('BAD_OVA', `manifest ${m.name} is ${m.size} bytes, more than the ${max} allowed`, {
        hint: HINT_HOSTILE,
      });
    }
    const text = (await this.readSmall(m, null)).toString('utf8');
    this.manifest = parseManifest(text);
    // Members already read were hashed on the way: check them now.
    for (const [name, href] of this.seen) this.requireCovered(name, href);
    for (const [name] of this.seen) if (this.manifest.has(name)) this.verify(name);
  }

  private async readSmall(m: Member, algorithms: DigestAlgorithm[] | null): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const b of this.data(m, algorithms)) parts.push(b);
    return Buffer.concat(parts);
  }

  /**
   * A member's bytes, counted and hashed as they pass. `algorithms` null: not
   * hashed (manifest, certificate); undefined: what the manifest asks, or
   * digestsBeforeManifest while no manifest was seen.
   */
  private async *data(
    m: Member,
    algorithms: DigestAlgorithm[] | null | undefined,
    href: string | null = null,
  ): AsyncGenerator<Buffer> {
    let hashes: Hasher | null = null;
    if (algorithms !== null) {
      this.seen.push([m.name, href]);
      if (this.manifest) this.requireCovered(m.name, href);
      const algs = algorithms ?? this.wanted(m.name);
      hashes = algs.length ? new Hasher(algs) : null;
    }
    this.members.current = m.name;
    let got = 0;
    try {
      for await (const raw of m.stream) {
        const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
        got += buf.length;
        hashes?.update(buf);
        yield buf;
      }
    } catch (e) {
      throw this.translate(e);
    }
    if (got !== m.size) throw this.truncated();
    this.members.current = null;
    if (hashes) {
      this.computed.set(m.name, hashes.digests());
      if (this.manifest?.has(m.name)) this.verify(m.name);
    }
  }

  /** All bytes of one referenced file, across its chunks, with size and digest checks at the end. */
  private async *fileBytes(file: OvfFile, first: Member, chunked: boolean): AsyncGenerator<Buffer> {
    const wholeAlg = chunked ? this.manifest?.get(file.href)?.algorithm : undefined;
    const whole = wholeAlg ? new Hasher([wholeAlg]) : null;
    let member = first;
    let index = 0;
    let total = 0;
    for (;;) {
      if (chunked && member.size > file.chunkSize!) {
        throw new P2vError(
          'BAD_OVA',
          `chunk ${member.name} is ${member.size} bytes, more than the ovf:chunkSize of ${file.chunkSize}`,
          { hint: HINT_HOSTILE },
        );
      }
      for await (const buf of this.data(member, undefined, chunked ? file.href : null)) {
        whole?.update(buf);
        total += buf.length;
        yield buf;
      }
      if (!chunked) break;
      const next = await this.members.next();
      const c = next ? parseChunkName(next.name) : null;
      if (!next || !c || c.href !== file.href) {
        this.members.pushBack(next);
        break;
      }
      if (c.index !== index + 1) {
        throw new P2vError(
          'BAD_OVA',
          `chunk ${next.name} is out of order: expected ${chunkName(file.href, index + 1)}`,
          { hint: HINT_HOSTILE },
        );
      }
      if (member.size !== file.chunkSize) {
        throw new P2vError(
          'BAD_OVA',
          `chunk ${member.name} is ${member.size} bytes, not the ovf:chunkSize of ${file.chunkSize}, yet more chunks follow`,
          { hint: HINT_HOSTILE },
        );
      }
      member = next;
      index++;
    }
    if (file.size !== undefined && total !== file.size) {
      throw new P2vError('BAD_OVA', `${file.href} is ${total} bytes but the descriptor says ${file.size}`, {
        hint: HINT_DAMAGED,
      });
    }
    if (whole) {
      this.computed.set(file.href, whole.digests());
      this.verify(file.href);
    }
  }

  // --- digests -----------------------------------------------------------------

  private wanted(name: string): DigestAlgorithm[] {
    if (!this.manifest) return this.opts.digestsBeforeManifest ?? DEFAULT_DIGESTS;
    const e = this.manifest.get(name);
    return e ? [e.algorithm] : [];
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

  // --- end of input ------------------------------------------------------------

  private finish(): void {
    if (this.descriptorName === null) {
      throw new P2vError('BAD_OVA', 'not an OVA: the archive holds no OVF descriptor', {
        hint: 'give p2v-import the .ova file written by p2v-export or an OVF tool',
      });
    }
    if (!this.tail.hasEndMarker(this.members.dataEnd)) {
      throw new P2vError(
        'TRUNCATED',
        `the OVA stream ends after ${this.members.lastName} without the tar end-of-archive marker`,
        { hint: HINT_TRUNCATED },
      );
    }
    for (const href of this.files.keys()) {
      if (!this.done.has(href)) {
        throw new P2vError('BAD_OVA', `${href}, referenced by ${this.descriptorName}, is missing from the OVA`, {
          hint: HINT_TRUNCATED,
        });
      }
    }
    if (!this.manifest) {
      if (this.opts.requireManifest) {
        throw new P2vError('BAD_MANIFEST', 'the OVA has no manifest (.mf)', {
          hint: 'export it again with a manifest, or allow OVAs without one',
        });
      }
      return;
    }
    for (const name of this.manifest.keys()) {
      if (this.checked.has(name)) continue;
      if (this.computed.has(name) || this.files.get(name)?.chunkSize !== undefined) this.verify(name);
      else
        throw new P2vError('BAD_MANIFEST', `the manifest lists ${name}, which is not in the OVA`, {
          hint: HINT_DAMAGED,
        });
    }
    for (const [name, href] of this.seen) this.requireCovered(name, href);
  }
}
