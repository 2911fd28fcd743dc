/**
 * readOva: check and unpack an OVA stream without ever holding a disk.
 *
 * The input (optionally gzip-compressed, as Ganeti writes ova.ova) is fed to
 * tar-stream's extract with backpressure (input-pump.ts, with the gzip
 * budget); members are taken one at a time and the next tar header is not
 * parsed until the current member was consumed.
 *
 *   1st member  the .ovf descriptor: size capped, parsed by the injected
 *               parseDescriptor; it says which files to expect.
 *   .mf         the manifest, wherever it comes (ovftool: right after the
 *               descriptor; p2v-export: last). Digests of members that came
 *               before it are checked when it arrives, later ones at their
 *               end (manifest-book.ts).
 *   .cert       read past (size capped): signatures are not checked (see
 *               docs/design-ova.md).
 *   others      a referenced file (href) or one chunk of it (href.NNNNNNNNN),
 *               handed to onFile as one content stream per file
 *               (member-data.ts).
 *
 * Anything else is refused with a one-line P2vError naming the member
 * (read-errors.ts): BAD_OVA (hostile or malformed archive), BAD_MANIFEST
 * (digest mismatch or manifest gaps), TRUNCATED (input ended early, at any
 * stage).
 */
import tar from 'tar-stream';
import { P2vError } from '../../lib/errors.js';
import type { MachineDescription, OvfFile } from '../types.js';
import type { DigestAlgorithm } from '../manifest.js';
import { chunkName, parseChunkName } from './chunk-name.js';
import { TarTail } from './tar-tail.js';
import { MemberReader, HINT_HOSTILE, type Member } from './member-reader.js';
import { referencedFiles } from './references.js';
import { FileContent } from './file-content.js';
import { ManifestBook } from './manifest-book.js';
import { fileBytes, memberBytes, type MemberContext } from './member-data.js';
import { pumpInput } from './input-pump.js';
import { HINT_DAMAGED, HINT_TRUNCATED, inputFailure, tarFailure, truncatedAt } from './read-errors.js';
import type { OvaReadOptions, OvaReadResult } from './types.js';

const DEFAULT_MAX_DESCRIPTOR = 4 * 1024 * 1024;
const DEFAULT_MAX_MANIFEST = 1024 * 1024;
/** A signing certificate is a few KiB of PEM; it is read past, so cap what that may cost. */
const MAX_CERTIFICATE = 1024 * 1024;
const ALL_DIGESTS: DigestAlgorithm[] = ['sha256', 'sha1', 'sha512'];

export async function readOva(
  input: AsyncIterable<Buffer> | NodeJS.ReadableStream,
  opts: OvaReadOptions,
): Promise<OvaReadResult> {
  const session = new ReadSession(opts);
  return session.run(input as AsyncIterable<Buffer | string>);
}

class ReadSession implements MemberContext {
  private readonly extract = tar.extract();
  private readonly tail = new TarTail();
  /** Set by the pump when reading or gunzipping the input failed; it explains the parser's failure. */
  private inputError: P2vError | null = null;
  members!: MemberReader;
  readonly book: ManifestBook;

  private descriptorName: string | null = null;
  private machine: MachineDescription | null = null;
  private files = new Map<string, OvfFile>();
  private certificate: string | undefined;
  private readonly done = new Set<string>();

  constructor(private readonly opts: OvaReadOptions) {
    this.book = new ManifestBook(opts.digestsBeforeManifest);
  }

  async run(input: AsyncIterable<Buffer | string>): Promise<OvaReadResult> {
    this.members = new MemberReader(this.extract, (e) => this.translate(e));
    const pump = pumpInput(input, this.extract, {
      tail: this.tail,
      dataEnd: () => this.members.dataEnd,
      fail: (e) => (this.inputError = inputFailure(e, this.members)),
    });
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
      verified: this.book.verified,
      manifestFound: this.book.found,
      ...(this.certificate !== undefined ? { certificate: this.certificate } : {}),
    };
  }

  translate(e: unknown): P2vError {
    return tarFailure(e, this.members, this.inputError);
  }

  truncated(): P2vError {
    return truncatedAt(this.members);
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
      if (m.size > MAX_CERTIFICATE) {
        throw new P2vError(
          'BAD_OVA',
          `certificate ${m.name} is ${m.size} bytes, more than the ${MAX_CERTIFICATE} allowed`,
          {
            hint: HINT_HOSTILE,
          },
        );
      }
      // Signature checking needs a trust store the staging host does not have;
      // integrity comes from the manifest, authenticity from the SSH channel.
      for await (const _ of memberBytes(this, m, null)) void _;
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

    const content = new FileContent(fileBytes(this, file, m, chunked));
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
    this.files = referencedFiles(m.name, machine.files);
    this.descriptorName = m.name;
    this.machine = machine;
  }

  private async readManifest(m: Member): Promise<void> {
    if (this.book.found)
      throw new P2vError('BAD_OVA', `the OVA holds two manifests (the second is ${m.name})`, { hint: HINT_HOSTILE });
    const max = this.opts.maxManifestBytes ?? DEFAULT_MAX_MANIFEST;
    if (m.size > max) {
      throw new P2vError('BAD_OVA', `manifest ${m.name} is ${m.size} bytes, more than the ${max} allowed`, {
        hint: HINT_HOSTILE,
      });
    }
    this.book.adopt((await this.readSmall(m, null)).toString('utf8'));
  }

  private async readSmall(m: Member, algorithms: DigestAlgorithm[] | null): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const b of memberBytes(this, m, algorithms)) parts.push(b);
    return Buffer.concat(parts);
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
    if (!this.book.found && this.opts.requireManifest) {
      throw new P2vError('BAD_MANIFEST', 'the OVA has no manifest (.mf)', {
        hint: 'export it again with a manifest, or allow OVAs without one',
      });
    }
    this.book.finish((name) => this.files.get(name)?.chunkSize !== undefined);
  }
}
