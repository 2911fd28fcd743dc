/**
 * An undo journal for a disk file written in place (importer/base-take.ts):
 * before a batch of ranges is overwritten, their old bytes are appended to
 * the journal and the journal is flushed, so the disk can always be put back
 * as it was, after an error, a signal or a crash (docs/design-delta.md).
 *
 *   "P2V-UNDO 1\n"
 *   records: "P2VUNDO1" | u64 offset | u64 length | SHA-256 (32) | old bytes
 *
 * Ranges are protected in ascending order and never twice (a delta's blocks
 * ascend), so every record holds the bytes from before the import began and
 * replaying them in file order is the undo. The SHA-256 covers the offset,
 * the length and the bytes. A record that is
 * short or does not match its digest is a torn tail (the crash came while
 * the journal was being written, so the disk write it protects never began,
 * the journal being flushed first): replay stops there.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

const FILE_MAGIC = Buffer.from('P2V-UNDO 1\n');
const RECORD_MAGIC = Buffer.from('P2VUNDO1');
const RECORD_HEADER = 8 + 8 + 8 + 32;
/** No record is longer than this (a batch's runs are each at most a few MiB); longer is damage, not data. */
export const MAX_UNDO_RECORD = 64 * 1024 * 1024;

export interface ByteRange {
  offset: number;
  length: number;
}

function recordDigest(head: Buffer, data: Buffer): Buffer {
  return createHash('sha256').update(head.subarray(8, 24)).update(data).digest();
}

export class UndoJournal {
  private size = FILE_MAGIC.length;
  /** End of the highest range protected so far: a new range must start at or after it. */
  private end = 0;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
  ) {}

  /** A new journal (created exclusively, never through a link). */
  static async create(path: string): Promise<UndoJournal> {
    const fh = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await fh.write(FILE_MAGIC, 0, FILE_MAGIC.length, 0);
      await fh.datasync();
    } catch (e) {
      await fh.close();
      throw e;
    }
    return new UndoJournal(path, fh);
  }

  /**
   * Save the bytes `disk` holds now in `ranges`, and flush them: only after
   * this returns may those ranges be written.
   */
  async protect(disk: FileHandle, ranges: readonly ByteRange[]): Promise<void> {
    const parts: Buffer[] = [];
    for (const r of ranges) {
      if (r.length > MAX_UNDO_RECORD) throw new Error(`undo record of ${r.length} bytes is over the limit`);
      if (r.offset < this.end) throw new Error(`undo range at ${r.offset} is not after the last one (${this.end})`);
      this.end = r.offset + r.length;
      const data = Buffer.allocUnsafe(r.length);
      // Past the end of the file reads as nothing; a disk file has its full size, so this is zeros at most.
      data.fill(0, await readFully(disk, data, r.offset));
      const head = Buffer.alloc(RECORD_HEADER);
      RECORD_MAGIC.copy(head, 0);
      head.writeBigUInt64BE(BigInt(r.offset), 8);
      head.writeBigUInt64BE(BigInt(r.length), 16);
      recordDigest(head, data).copy(head, 24);
      parts.push(head, data);
    }
    if (parts.length === 0) return;
    const bytes = parts.reduce((a, b) => a + b.length, 0);
    await this.fh.writev(parts, this.size);
    this.size += bytes;
    await this.fh.datasync();
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

export interface ReplayResult {
  records: number;
  bytes: number;
  /** A torn last record was found (and not replayed). */
  torn: boolean;
}

/**
 * Write every whole record of the journal at `path` back onto `disk`, then
 * flush the disk. A missing journal replays nothing (the disk was never
 * written). Reads record by record: memory is one record at most.
 */
export async function replayUndo(path: string, disk: FileHandle, capacity: number): Promise<ReplayResult> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { records: 0, bytes: 0, torn: false };
    throw e;
  }
  const result: ReplayResult = { records: 0, bytes: 0, torn: false };
  try {
    const size = (await fh.stat()).size;
    const magic = Buffer.alloc(FILE_MAGIC.length);
    await readFully(fh, magic, 0);
    // A journal cut before its own header was flushed protects no write yet.
    if (!magic.equals(FILE_MAGIC)) return { ...result, torn: size > 0 };
    let at = FILE_MAGIC.length;
    const head = Buffer.alloc(RECORD_HEADER);
    while (at < size) {
      if ((await readFully(fh, head, at)) < RECORD_HEADER || !head.subarray(0, 8).equals(RECORD_MAGIC)) {
        result.torn = true;
        break;
      }
      const offset = Number(head.readBigUInt64BE(8));
      const length = Number(head.readBigUInt64BE(16));
      if (length > MAX_UNDO_RECORD || offset + length > capacity || at + RECORD_HEADER + length > size) {
        result.torn = true;
        break;
      }
      const data = Buffer.allocUnsafe(length);
      if (
        (await readFully(fh, data, at + RECORD_HEADER)) < length ||
        !recordDigest(head, data).equals(head.subarray(24))
      ) {
        result.torn = true;
        break;
      }
      await writeFully(disk, data, offset);
      result.records++;
      result.bytes += length;
      at += RECORD_HEADER + length;
    }
    await disk.sync();
    return result;
  } finally {
    await fh.close();
  }
}

async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

async function writeFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let put = 0;
  while (put < buf.length) {
    const { bytesWritten } = await fh.write(buf, put, buf.length - put, position + put);
    put += bytesWritten;
  }
}
