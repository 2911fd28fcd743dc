/**
 * DiskSink: where a disk's decoded bytes land. Chunks arrive as DataChunks in
 * ascending offset order (gaps are zeros); only non-zero data is written, with
 * positional writes, so holes in the image stay holes in a sparse raw file
 * (and untouched blocks on a device). One module owns this so the rules —
 * order, bounds, zero skipping, final size, fsync — are enforced in one place
 * whoever feeds the sink (VMDK grains, qemu-img output copies, re-reads).
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { P2vError } from '../lib/errors.js';
import { run } from '../lib/run.js';
import { GRAIN_SIZE, type DataChunk } from '../ovf/types.js';
import { isAllZero } from '../ovf/vmdk/index.js';
import { describeSize } from './size.js';

export interface DiskSink {
  /** Virtual size of the disk being written. */
  readonly capacity: number;
  /** Bytes actually written (zero runs are skipped). */
  readonly dataBytes: number;
  /**
   * Take one chunk; offsets must ascend and stay within capacity. The sink may
   * keep `data` (not a copy) until a later write or finish, so a caller must
   * not reuse the buffer; errors of a held write surface there.
   */
  write(chunk: DataChunk): Promise<void>;
  /** Set the final size (files), flush to stable storage and close. */
  finish(): Promise<void>;
  /** Close without finishing (the caller removes what it must). */
  abort(): Promise<void>;
}

/** How every file a sink writes is created: new, never through a symbolic link ('wx' plus O_NOFOLLOW). */
export const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Adjacent non-zero pieces are written together, up to this many bytes per writev. */
export const MAX_WRITE_RUN = 1024 * 1024;

/**
 * After this many bytes written, a background fdatasync starts (at most one at
 * a time), so the disk writes back while we decode instead of all at the end:
 * the closing fsync of a 1 GiB import went from ~0.6 s to what the last
 * stretch left dirty. Linux would not start writeback on its own before
 * dirty_background_ratio (gigabytes on a staging host).
 */
export const WRITEBACK_EVERY = 64 * 1024 * 1024;

/**
 * Runs written at once. One writev at a time left every thread idle most of
 * the time on our VMs, waiting on the kernel's copy into the page cache;
 * qemu-img keeps several writes going too. Positioned writes to distinct
 * ranges may complete in any order.
 */
export const MAX_WRITES_IN_FLIGHT = 4;

/** Adjacent pieces waiting to be written with one positioned writev. */
interface PendingRun {
  offset: number;
  buffers: Buffer[];
  length: number;
}

class FdSink implements DiskSink {
  private next = 0;
  private written = 0;
  private closed = false;
  private run: PendingRun | null = null;
  private sinceWriteback = 0;
  private writeback: Promise<void> | null = null;
  /** Writes under way, oldest first (each settles without rejecting; `failure` keeps the first error). */
  private readonly inFlight: Promise<void>[] = [];
  private failure: unknown = null;

  constructor(
    private readonly fh: FileHandle,
    readonly capacity: number,
    private readonly what: string,
    private readonly truncate: boolean,
  ) {}

  get dataBytes(): number {
    return this.written;
  }

  async write({ offset, data }: DataChunk): Promise<void> {
    if (!Number.isSafeInteger(offset) || offset < this.next) {
      throw new P2vError(
        'BAD_VMDK',
        `${this.what}: data at offset ${offset} is out of order (expected ${this.next} or later)`,
        {
          hint: 'the disk stream is corrupt or hostile; export it again',
        },
      );
    }
    if (offset + data.length > this.capacity) {
      throw new P2vError(
        'BAD_VMDK',
        `${this.what}: data at offset ${offset} runs past the disk's capacity of ${this.capacity} bytes`,
        {
          hint: 'the disk stream is corrupt or hostile; export it again',
        },
      );
    }
    this.next = offset + data.length;
    // Skip zero runs at grain granularity so a chunk that is mostly holes
    // still leaves holes; gather the rest so one writev carries many grains
    // (a pwrite per 64 KiB grain cost more than decoding it).
    for (let p = 0; p < data.length;) {
      const n = Math.min(GRAIN_SIZE - ((offset + p) % GRAIN_SIZE), data.length - p);
      const piece = data.subarray(p, p + n);
      if (!isAllZero(piece)) await this.append(offset + p, piece);
      p += n;
    }
  }

  private async append(offset: number, piece: Buffer): Promise<void> {
    const r = this.run;
    if (r && r.offset + r.length === offset && r.length + piece.length <= MAX_WRITE_RUN) {
      r.buffers.push(piece);
      r.length += piece.length;
      return;
    }
    await this.flush();
    this.run = { offset, buffers: [piece], length: piece.length };
  }

  /** Start writing the gathered run; wait only when MAX_WRITES_IN_FLIGHT are already under way. */
  private async flush(): Promise<void> {
    const r = this.run;
    if (!r) return;
    this.run = null;
    this.inFlight.push(
      this.writeRun(r).catch((e: unknown) => {
        this.failure ??= e;
      }),
    );
    if (this.inFlight.length >= MAX_WRITES_IN_FLIGHT) await this.inFlight.shift();
    if (this.failure) throw this.failure;
  }

  private async writeRun(r: PendingRun): Promise<void> {
    const done = (await this.fh.writev(r.buffers, r.offset)).bytesWritten;
    if (done < r.length) {
      // A short writev (a signal, a full device): finish it piece by piece so an error names the real cause.
      const rest = Buffer.concat(r.buffers).subarray(done);
      for (let p = 0; p < rest.length;) {
        const { bytesWritten } = await this.fh.write(rest, p, rest.length - p, r.offset + done + p);
        if (bytesWritten === 0) {
          throw new P2vError('IO', `${this.what}: the write at offset ${r.offset + done + p} made no progress`, {
            hint: 'check the target device or filesystem (full, or failing)',
          });
        }
        p += bytesWritten;
      }
    }
    this.written += r.length;
    this.sinceWriteback += r.length;
    if (this.sinceWriteback >= WRITEBACK_EVERY && !this.writeback) {
      this.sinceWriteback = 0;
      this.writeback = this.fh.datasync().then(
        () => {
          this.writeback = null;
        },
        (e: unknown) => {
          this.writeback = null;
          this.failure ??= e;
        },
      );
    }
  }

  /** Wait for every write and writeback under way; the first failure, if any, is thrown. */
  private async settle(): Promise<void> {
    await Promise.all(this.inFlight.splice(0));
    await this.writeback;
    if (this.failure) throw this.failure;
  }

  async finish(): Promise<void> {
    await this.flush();
    await this.settle();
    if (this.truncate) await this.fh.truncate(this.capacity);
    await this.fh.sync();
    await this.close();
  }

  async abort(): Promise<void> {
    this.run = null;
    await this.settle().catch(() => {});
    await this.close();
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }
}

/** A new sparse raw file (must not exist yet) of `capacity` bytes. */
export async function createRawFileSink(path: string, capacity: number): Promise<DiskSink> {
  const fh = await open(path, CREATE_NEW, 0o600);
  try {
    // Size it first: a later reader sees the right size even while filling.
    await fh.truncate(capacity);
  } catch (e) {
    await fh.close();
    throw e;
  }
  return new FdSink(fh, capacity, path, true);
}

/** Size in bytes of a block device or regular file. */
export async function targetSize(path: string): Promise<number> {
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    if (st.isFile()) return st.size;
    if (!st.isBlockDevice()) {
      throw new P2vError('USAGE', `${path} is neither a block device nor a regular file`, {
        hint: 'give --device a disk such as /dev/vda',
      });
    }
  } finally {
    await fh.close();
  }
  return Number(await runStdout('blockdev', ['--getsize64', path]));
}

async function runStdout(program: string, args: string[]): Promise<string> {
  const r = await run(program, args, { what: `sizing ${args[args.length - 1]}` });
  return String(r.stdout).trim();
}

/**
 * An existing device (or file) that must hold at least `capacity` bytes. Its
 * size is never changed. Holes in the image are not written, so the first
 * `capacity` bytes are zeroed first (a punched hole on a file; BLKZEROOUT on a
 * device, which thin and file-backed storage turn into unmapping): whatever the
 * target held before must not show through where the source had zeros.
 */
export async function createDeviceSink(path: string, capacity: number): Promise<DiskSink> {
  const size = await targetSize(path);
  if (size < capacity) {
    throw new P2vError('POLICY', `${path} holds ${describeSize(size)} but the disk needs ${describeSize(capacity)}`, {
      hint: 'give a larger target device',
    });
  }
  const fh = await open(path, 'r+');
  try {
    const st = await fh.stat();
    const [program, args] = st.isFile()
      ? ['fallocate', ['--punch-hole', '--keep-size', '--offset', '0', '--length', String(capacity), path]]
      : ['blkdiscard', ['--zeroout', '--offset', '0', '--length', String(capacity), path]];
    await run(program, args as string[], { what: `zeroing ${path} before writing` });
  } catch (e) {
    await fh.close();
    throw e;
  }
  return new FdSink(fh, capacity, path, false);
}

/** The non-zero grains of a raw file, as DataChunks (one grain each, or fewer bytes at the end). */
export async function* readRawChunks(
  path: string,
  capacity: number,
  chunkBytes = 16 * GRAIN_SIZE,
): AsyncIterable<DataChunk> {
  const fh = await open(path, 'r');
  try {
    for (let off = 0; off < capacity; off += chunkBytes) {
      const buf = Buffer.allocUnsafe(Math.min(chunkBytes, capacity - off));
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, off + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      buf.fill(0, got);
      for (let p = 0; p < buf.length; p += GRAIN_SIZE) {
        const g = buf.subarray(p, Math.min(p + GRAIN_SIZE, buf.length));
        if (!isAllZero(g)) yield { offset: off + p, data: Buffer.from(g) };
      }
    }
  } finally {
    await fh.close();
  }
}

/** Copy a raw file's data into a sink (sparse copy across filesystems, device writes). */
export async function copyRawInto(src: string, capacity: number, sink: DiskSink): Promise<void> {
  try {
    for await (const c of readRawChunks(src, capacity)) await sink.write(c);
    await sink.finish();
  } catch (e) {
    await sink.abort();
    throw e;
  }
}

/**
 * Copy a byte stream into a new file, sparsely (zero grains become holes),
 * refusing more than `limit` bytes. Returns the length written.
 */
export async function writeSparseFile(
  path: string,
  source: AsyncIterable<Buffer>,
  limit: number,
  what: string,
): Promise<number> {
  const fh = await open(path, CREATE_NEW, 0o600);
  const sink = new FdSink(fh, limit, path, false);
  let length = 0;
  try {
    for await (const data of source) {
      if (length + data.length > limit) {
        throw new P2vError('BAD_OVA', `${what} is larger than the ${limit} bytes allowed for it`, {
          hint: 'the file is corrupt or hostile, or --disk-size is too small',
        });
      }
      await sink.write({ offset: length, data });
      length += data.length;
    }
    await fh.truncate(length);
    await sink.finish();
    return length;
  } catch (e) {
    await sink.abort();
    throw e;
  }
}
