/**
 * A disk's blocks in order, from its data chunks (ascending, gaps are zeros).
 * Runs of blocks no chunk touches come out as one ZERO run (never hashed, one
 * object however long), every other block with its entry and, for a data
 * block, its bytes (see DigestedBlock.data for how long they live). Yielded in batches: a 2 GiB
 * disk has 524 288 blocks of 4 KiB, and an await per block cost more than
 * hashing the data.
 */
import type { DataChunk } from '../types.js';
import { blockCount, blockLength, DIGEST_BYTES, ENTRY_ZERO, entryOf, sameEntry, type BlockEntry } from './format.js';

/** `count` blocks from `index`: a ZERO run (entry null), or one block (count 1). */
export interface DigestedBlock {
  index: number;
  count: number;
  entry: BlockEntry;
  /**
   * The block's bytes when it holds data: a view into the chunk it came from
   * when it lies whole inside it, so valid only as long as that chunk (a lent
   * chunk is reused once the next is pulled: copy what you keep).
   */
  data?: Buffer;
}

/**
 * Chunks in ascending order go in, the blocks they complete come out (holes
 * before them as one ZERO run). Used as an iterable (digestBlocks) or pushed
 * (the importer's decode loop).
 */
export class BlockDigester {
  private next = 0;
  private cur: { index: number; buf: Buffer; filled: number } | null = null;
  constructor(
    private readonly capacity: number,
    private readonly blockSize: number,
  ) {}

  private gapTo(b: number, out: DigestedBlock[]): void {
    if (b > this.next) out.push({ index: this.next, count: b - this.next, entry: null });
    this.next = b;
  }

  private emit(index: number, buf: Buffer, out: DigestedBlock[], known?: BlockEntry): void {
    const entry = known === undefined ? entryOf(buf) : known;
    out.push(entry === null ? { index, count: 1, entry } : { index, count: 1, entry, data: buf });
  }

  /**
   * `hashed`, when given, holds the entries of the chunk's first whole blocks
   * (the chunk starting on a block boundary), computed elsewhere (a worker
   * thread: exporter/delta/block-hasher.ts), 33 bytes each: tag (0 zeros,
   * 1 data) and the SHA-256.
   */
  push({ offset, data }: DataChunk, out: DigestedBlock[], hashed?: Buffer): void {
    if (offset + data.length > this.capacity)
      throw new RangeError(`chunk at ${offset} runs past the capacity ${this.capacity}`);
    const bs = this.blockSize;
    for (let p = 0; p < data.length;) {
      const at = offset + p;
      const b = Math.floor(at / bs);
      if (this.cur && this.cur.index !== b) this.close(out);
      const len = blockLength(b, this.capacity, bs);
      if (!this.cur) {
        if (b < this.next) throw new RangeError(`chunk at ${offset} is out of order`);
        this.gapTo(b, out);
        // A whole block inside the chunk: no copy (chunks are fresh buffers the caller does not reuse).
        if (at === b * bs && data.length - p >= len) {
          const k = p / bs;
          const known =
            hashed && len === bs && (k + 1) * 33 <= hashed.length
              ? hashed[k * 33] === 0
                ? null
                : hashed.subarray(k * 33 + 1, k * 33 + 33)
              : undefined;
          this.emit(b, data.subarray(p, p + len), out, known);
          this.next = b + 1;
          p += len;
          continue;
        }
        this.cur = { index: b, buf: Buffer.alloc(len), filled: 0 };
        this.next = b + 1;
      }
      const inBlock = at - b * bs;
      const n = Math.min(data.length - p, this.cur.buf.length - inBlock);
      data.copy(this.cur.buf, inBlock, p, p + n);
      p += n;
    }
  }

  private close(out: DigestedBlock[]): void {
    this.emit(this.cur!.index, this.cur!.buf, out);
    this.cur = null;
  }

  /** The last blocks, up to the end of the disk. */
  finish(out: DigestedBlock[]): void {
    if (this.cur) this.close(out);
    this.gapTo(blockCount(this.capacity, this.blockSize), out);
  }
}

/** Entries of a chunk's whole blocks computed elsewhere (BlockDigester.push's `hashed`), or undefined. */
export type ChunkHasher = (c: DataChunk) => Promise<Buffer | undefined>;

/**
 * Chunks digestBlocks holds at once with a hasher (one without it holds one): it pulls (and starts
 * hashing) the next chunk before it hands on the blocks of the one before,
 * so the hasher's thread works while the consumer compares. A reader that
 * lends its buffers must keep this many valid (disk-content.ts `lend`).
 */
export const DIGEST_CHUNKS_HELD = 2;

export async function* digestBlocks(
  chunks: AsyncIterable<DataChunk>,
  capacity: number,
  blockSize: number,
  hasher?: ChunkHasher,
): AsyncGenerator<DigestedBlock[]> {
  const d = new BlockDigester(capacity, blockSize);
  if (!hasher) {
    for await (const c of chunks) {
      const out: DigestedBlock[] = [];
      d.push(c, out);
      if (out.length) yield out;
    }
  } else {
    const start = (c: DataChunk) => {
      if (c.offset % blockSize !== 0) return Promise.resolve(undefined);
      const p = hasher(c);
      p.catch(() => undefined); // observed in its turn
      return p;
    };
    const it = chunks[Symbol.asyncIterator]();
    try {
      let cur = await it.next();
      let curEntries = cur.done ? undefined : start(cur.value);
      while (!cur.done) {
        const next = await it.next();
        const nextEntries = next.done ? undefined : start(next.value);
        const out: DigestedBlock[] = [];
        d.push(cur.value, out, await curEntries);
        if (out.length) yield out;
        cur = next;
        curEntries = nextEntries;
      }
    } finally {
      await it.return?.();
    }
  }
  const out: DigestedBlock[] = [];
  d.finish(out);
  if (out.length) yield out;
}

/** Encoded entries as they lie in a map (tag, then 32 digest bytes for data), `count` of them. */
export interface EntryRun {
  bytes: Buffer;
  count: number;
}

/**
 * Entries of a disk read in batches (a block map, a map file), taken one at a
 * time without an await per entry: `fill` when `has` says the batch is used
 * up. A batch is entries, or an EntryRun of encoded bytes that `takeSame`
 * compares in place (an object per entry of a 2 GiB disk's map cost more
 * than the comparing: bench/README.md).
 */
export class EntryCursor {
  private batch: BlockEntry[] | EntryRun = [];
  private i = 0;
  private pos = 0;
  private ended = false;
  constructor(private readonly it: AsyncIterator<BlockEntry[] | EntryRun>) {}
  private get size(): number {
    return Array.isArray(this.batch) ? this.batch.length : this.batch.count;
  }
  has(): boolean {
    return this.i < this.size;
  }
  /** Load the next batch; false at the end. */
  async fill(): Promise<boolean> {
    while (!this.has() && !this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else {
        this.batch = r.value;
        this.i = 0;
        this.pos = 0;
      }
    }
    return this.has();
  }
  take(): BlockEntry {
    const b = this.batch;
    if (Array.isArray(b)) return b[this.i++]!;
    this.i++;
    if (b.bytes[this.pos] === ENTRY_ZERO) {
      this.pos++;
      return null;
    }
    this.pos += 1 + DIGEST_BYTES;
    return b.bytes.subarray(this.pos - DIGEST_BYTES, this.pos);
  }
  /** Take the next entry and say whether it is `e`, building nothing. */
  takeSame(e: BlockEntry): boolean {
    const b = this.batch;
    if (Array.isArray(b)) return sameEntry(e, b[this.i++]!);
    this.i++;
    if (b.bytes[this.pos] === ENTRY_ZERO) {
      this.pos++;
      return e === null;
    }
    this.pos += 1 + DIGEST_BYTES;
    return e !== null && b.bytes.compare(e, 0, DIGEST_BYTES, this.pos - DIGEST_BYTES, this.pos) === 0;
  }
  /** The next entry, or undefined at the end. */
  async next(): Promise<BlockEntry | undefined> {
    if (!this.has() && !(await this.fill())) return undefined;
    return this.take();
  }
}
