/**
 * writeOva: the descriptor, the files, then the manifest, as one USTAR archive.
 *
 * 'stream' mode (a pipe, e.g. stdout into ssh): a tar header must state its
 * member's size before the data, and a disk's final size is unknown while it
 * is being produced, so each file is cut into members of chunkSize bytes
 * (DSP0243 chunking) and only the chunk being filled is held in memory. The
 * descriptor goes first without ovf:size; the manifest, which needs every
 * digest, goes last.
 *
 * 'file' mode (a regular file): each file is one member. Its header is written
 * with size 0, the data streamed after it, and the header rewritten in place
 * with the real size. The descriptor member is given a fixed, generously
 * padded size up front and rewritten in place at the end with the real
 * ovf:size values, so the result reads like any ovftool OVA.
 *
 * Backpressure: content is pulled from each OvaFileInput only after the
 * previous write has been accepted (stream 'drain', or the file write done).
 */
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import { P2vError } from '../../lib/errors.js';
import { drainedOrGone } from '../../lib/writable.js';
import { DEFAULT_CHUNK_SIZE, type OvfFile } from '../types.js';
import { formatManifest, type ManifestEntry } from '../manifest.js';
import { encodeTarHeader, tarPadding, TAR_BLOCK, TAR_END } from './tar-header.js';
import { chunkName } from './chunk-name.js';
import type { OvaFileInput, OvaWriteOptions, OvaWriteResult } from './types.js';

/** Room kept in 'file' mode for the descriptor to grow when sizes are filled in. */
const DESCRIPTOR_SLACK = 1024;
const DESCRIPTOR_SLACK_PER_FILE = 64;
const PADDING_COMMENT = '<!-- room reserved so the writer can fill in file sizes in place -->';

export async function writeOva(opts: OvaWriteOptions): Promise<OvaWriteResult> {
  checkOptions(opts);
  if (opts.mode === 'file') {
    if (typeof opts.output !== 'string') throw new TypeError("writeOva: mode 'file' needs a path as output");
    return writeFileMode(opts, opts.output);
  }
  if (typeof opts.output === 'string') throw new TypeError("writeOva: mode 'stream' needs a writable stream as output");
  return writeStreamMode(opts, opts.output);
}

/** The member name of the manifest that goes with a descriptor ("vm.ovf" → "vm.mf"). */
export function manifestNameFor(descriptorName: string): string {
  return descriptorName.replace(/\.ovf$/i, '') + '.mf';
}

/**
 * `xml` followed by whitespace and an XML comment so that it is exactly
 * `size` bytes (trailing comments and whitespace are allowed after the root
 * element). Null when it does not fit.
 */
export function padDescriptor(xml: string, size: number): Buffer | null {
  const body = Buffer.from(xml, 'utf8');
  const room = size - body.length;
  if (room < 0) return null;
  if (room === 0) return body;
  const fill =
    room >= PADDING_COMMENT.length + 2
      ? '\n' + PADDING_COMMENT + ' '.repeat(room - PADDING_COMMENT.length - 2) + '\n'
      : ' '.repeat(room - 1) + '\n';
  return Buffer.concat([body, Buffer.from(fill, 'ascii')]);
}

// ---------------------------------------------------------------------------

function checkOptions(opts: OvaWriteOptions): void {
  if (!/^[^/\\\0]+\.ovf$/i.test(opts.descriptorName) || opts.descriptorName.startsWith('.')) {
    throw new P2vError(
      'USAGE',
      `the descriptor name must be a plain file name ending in .ovf, not ${JSON.stringify(opts.descriptorName)}`,
    );
  }
  const seen = new Set<string>([opts.descriptorName, manifestNameFor(opts.descriptorName)]);
  const ids = new Set<string>();
  for (const f of opts.files) {
    if (!/^[^/\\\x00-\x1f]+$/.test(f.href) || f.href.startsWith('.') || /\.(ovf|mf|cert)$/i.test(f.href)) {
      throw new P2vError(
        'USAGE',
        `cannot put ${JSON.stringify(f.href)} in an OVA: a file must be a plain name, not ending in .ovf, .mf or .cert`,
      );
    }
    if (seen.has(f.href)) throw new P2vError('USAGE', `two files of the OVA are named ${f.href}`);
    if (ids.has(f.id)) throw new P2vError('USAGE', `two files of the OVA have the id ${f.id}`);
    seen.add(f.href);
    ids.add(f.id);
  }
  if (opts.chunkSize !== undefined && (!Number.isSafeInteger(opts.chunkSize) || opts.chunkSize < 1)) {
    throw new P2vError('USAGE', `bad OVA chunk size ${opts.chunkSize}`);
  }
}

function digestOf(h: Hash): string {
  return h.digest('hex');
}

function toBuffer(chunk: Buffer | Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

// --- 'stream' mode ---------------------------------------------------------

/** Sequential writes to a Node writable with 'drain' backpressure and error capture. */
class StreamSink {
  bytes = 0;
  private failure: Error | null = null;
  private readonly onError = (e: Error) => {
    this.failure ??= e;
  };

  constructor(private readonly out: NodeJS.WritableStream) {
    out.on('error', this.onError);
  }

  async write(buf: Buffer): Promise<void> {
    this.check();
    if (buf.length === 0) return;
    this.bytes += buf.length;
    if (!this.out.write(buf)) await drainedOrGone(this.out);
    this.check();
  }

  release(): void {
    this.out.removeListener('error', this.onError);
  }

  private check(): void {
    if (this.failure) {
      throw new P2vError('IO', `cannot write the OVA stream: ${this.failure.message}`, {
        cause: this.failure,
        hint: 'the receiving side went away; look at its error messages',
      });
    }
  }
}

async function writeStreamMode(opts: OvaWriteOptions, out: NodeJS.WritableStream): Promise<OvaWriteResult> {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const algorithm = opts.manifest ?? 'sha256';
  const sink = new StreamSink(out);
  const mtime = new Date();
  const entries: ManifestEntry[] = [];
  try {
    const member = async (name: string, parts: Buffer[], size: number) => {
      const h = createHash(algorithm);
      await sink.write(encodeTarHeader({ name, size, mtime }));
      for (const p of parts) {
        h.update(p);
        await sink.write(p);
      }
      await sink.write(TAR_END.subarray(0, tarPadding(size)));
      entries.push({ name, algorithm, hex: digestOf(h) });
    };

    const announced: OvfFile[] = opts.files.map((f) => ({ id: f.id, href: f.href, chunkSize }));
    const xml = Buffer.from(opts.descriptor(announced), 'utf8');
    await member(opts.descriptorName, [xml], xml.length);

    const files: OvfFile[] = [];
    for (const f of opts.files) {
      let index = 0;
      let size = 0;
      let pending: Buffer[] = [];
      let pendingLen = 0;
      const flush = async () => {
        const parts = pending;
        const len = pendingLen;
        pending = [];
        pendingLen = 0;
        await member(chunkName(f.href, index++), parts, len);
      };
      for await (const raw of f.content) {
        let buf = toBuffer(raw);
        size += buf.length;
        opts.onProgress?.(buf.length);
        while (buf.length > 0) {
          const take = Math.min(buf.length, chunkSize - pendingLen);
          pending.push(buf.subarray(0, take));
          pendingLen += take;
          buf = buf.subarray(take);
          if (pendingLen === chunkSize) await flush();
        }
      }
      // An empty file still travels as one (empty) chunk so the reader sees it.
      if (pendingLen > 0 || index === 0) await flush();
      files.push({ id: f.id, href: f.href, size, chunkSize });
    }

    const manifest = formatManifest(entries);
    const mf = Buffer.from(manifest, 'utf8');
    await sink.write(encodeTarHeader({ name: manifestNameFor(opts.descriptorName), size: mf.length, mtime }));
    await sink.write(mf);
    await sink.write(TAR_END.subarray(0, tarPadding(mf.length)));
    await sink.write(TAR_END);
    return { files, manifest, bytesWritten: sink.bytes };
  } finally {
    sink.release();
  }
}

// --- 'file' mode -----------------------------------------------------------

async function writeFileMode(opts: OvaWriteOptions, path: string): Promise<OvaWriteResult> {
  const algorithm = opts.manifest ?? 'sha256';
  const mtime = new Date();
  let fh: FileHandle;
  try {
    fh = await open(path, 'w', 0o644);
  } catch (e) {
    throw ioError(path, e);
  }
  let pos = 0;
  const patch = async (buf: Buffer, at: number): Promise<void> => {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await fh.write(buf, done, buf.length - done, at + done);
      done += bytesWritten;
    }
  };
  const put = async (buf: Buffer): Promise<void> => {
    await patch(buf, pos);
    pos += buf.length;
  };
  try {
    // Descriptor: a fixed-size member, rewritten at the end.
    const first = opts.descriptor(opts.files.map((f) => ({ id: f.id, href: f.href })));
    const firstLen = Buffer.byteLength(first, 'utf8');
    const reserved = roundUp(firstLen + DESCRIPTOR_SLACK + DESCRIPTOR_SLACK_PER_FILE * opts.files.length, TAR_BLOCK);
    await put(encodeTarHeader({ name: opts.descriptorName, size: reserved, mtime }));
    const descriptorAt = pos;
    await put(padDescriptor(first, reserved)!);

    const files: OvfFile[] = [];
    const entries: ManifestEntry[] = [];
    for (const f of opts.files) {
      const headerAt = pos;
      await put(encodeTarHeader({ name: f.href, size: 0, mtime }));
      const h = createHash(algorithm);
      let size = 0;
      for await (const raw of f.content) {
        const buf = toBuffer(raw);
        h.update(buf);
        await put(buf);
        size += buf.length;
        opts.onProgress?.(buf.length);
      }
      await put(TAR_END.subarray(0, tarPadding(size)));
      await patch(encodeTarHeader({ name: f.href, size, mtime }), headerAt);
      files.push({ id: f.id, href: f.href, size });
      entries.push({ name: f.href, algorithm, hex: digestOf(h) });
    }

    const final = opts.descriptor(files);
    const body = padDescriptor(final, reserved);
    if (!body) {
      throw new P2vError(
        'BAD_OVF',
        `the final OVF descriptor (${Buffer.byteLength(final)} bytes) does not fit the ${reserved} bytes reserved for it`,
        { hint: 'the descriptor grew by more than the file sizes; this is a bug in p2v-export, please report it' },
      );
    }
    await patch(body, descriptorAt);
    entries.unshift({ name: opts.descriptorName, algorithm, hex: createHash(algorithm).update(body).digest('hex') });

    const manifest = formatManifest(entries);
    const mf = Buffer.from(manifest, 'utf8');
    await put(encodeTarHeader({ name: manifestNameFor(opts.descriptorName), size: mf.length, mtime }));
    await put(mf);
    await put(TAR_END.subarray(0, tarPadding(mf.length)));
    await put(TAR_END);
    await fh.sync();
    await fh.close();
    return { files, manifest, bytesWritten: pos };
  } catch (e) {
    await fh.close().catch(() => undefined);
    // A half-written OVA looks like a whole one to a careless reader: remove it.
    await unlink(path).catch(() => undefined);
    if (e instanceof P2vError) throw e;
    if (isErrno(e)) throw ioError(path, e);
    throw e;
  }
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function isErrno(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string';
}

function ioError(path: string, e: unknown): P2vError {
  const msg = e instanceof Error ? e.message : String(e);
  return new P2vError('IO', `cannot write ${path}: ${msg}`, {
    cause: e,
    hint: 'check the free space and permissions of the target directory',
  });
}
