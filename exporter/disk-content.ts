/**
 * The overlay's bytes as DataChunks for the ovf/ writers. Block status is
 * asked first, for the whole disk: it gives the data extents to read (holes
 * and zero extents are skipped, they are gaps of zeros to the writers) and
 * their total, which the OVF descriptor wants as populatedSize before any
 * byte is written. The reads are then pipelined, a bounded number in flight,
 * and yielded in ascending offset order as the consumer pulls them, so memory
 * stays at about maxInFlight × readSize whatever the disk size.
 */
import type { DataChunk, DiskContent } from '../ovf/types.js';
import { NbdClient } from './nbd/index.js';
import type { NbdExtent } from './nbd/index.js';
import type { OnProgress } from '../lib/progress.js';

export interface DiskContentOptions {
  /** Reads on the wire at once (default 8: see exporter/nbd/BENCH.md). */
  maxInFlight?: number;
  /** Bytes per read and per chunk, at most (default 2 MiB). Reads are aligned to multiples of it. */
  readSize?: number;
  /**
   * Called after each chunk is handed over with the running total of data
   * bytes handed over in this pass (not an increment); it ends at dataBytes.
   * Each pass over `chunks` starts again from 0.
   */
  onProgress?: OnProgress;
}

export interface OverlayDiskContent extends DiskContent {
  /** Sum of the data extents' lengths: the bytes `chunks` will yield. */
  dataBytes: number;
  /** Number of data extents (after merging adjacent ones). */
  dataExtents: number;
  /** Close the NBD connection (waits for reads in flight). */
  close(): Promise<void>;
}

export const DEFAULT_READ_SIZE = 2 * 1024 * 1024;
export const DEFAULT_IN_FLIGHT = 8;

/** Data extents as (offset, length) pairs in a growable typed array: 16 bytes per extent even on a badly fragmented disk. */
class ExtentList {
  private a = new Float64Array(256);
  count = 0;
  total = 0;

  add(offset: number, length: number): void {
    const last = this.count - 1;
    if (last >= 0 && this.a[2 * last]! + this.a[2 * last + 1]! === offset) {
      this.a[2 * last + 1]! += length;
    } else {
      if (2 * this.count + 2 > this.a.length) {
        const b = new Float64Array(this.a.length * 2);
        b.set(this.a);
        this.a = b;
      }
      this.a[2 * this.count] = offset;
      this.a[2 * this.count + 1] = length;
      this.count++;
    }
    this.total += length;
  }

  offset(i: number): number {
    return this.a[2 * i]!;
  }

  length(i: number): number {
    return this.a[2 * i + 1]!;
  }
}

/** Bytes the writers must see: everything that does not read as zeros. */
export function isData(e: NbdExtent): boolean {
  return !e.zero;
}

/** The (offset, length) reads covering the data extents, split at multiples of `readSize`. */
function* reads(list: ExtentList, readSize: number): Generator<[number, number]> {
  for (let i = 0; i < list.count; i++) {
    const start = list.offset(i);
    const end = start + list.length(i);
    let at = start;
    while (at < end) {
      const next = Math.min(end, (Math.floor(at / readSize) + 1) * readSize);
      yield [at, next - at];
      at = next;
    }
  }
}

/** DiskContent over an already connected client (the caller keeps ownership of it). */
export async function diskContentOf(
  client: NbdClient,
  opts: DiskContentOptions = {},
): Promise<DiskContent & { dataBytes: number; dataExtents: number }> {
  const readSize = opts.readSize ?? DEFAULT_READ_SIZE;
  const maxInFlight = Math.max(1, opts.maxInFlight ?? DEFAULT_IN_FLIGHT);
  if (!Number.isSafeInteger(readSize) || readSize <= 0)
    throw new RangeError(`readSize must be a positive integer, not ${readSize}`);
  const list = new ExtentList();
  for await (const e of client.extents()) if (isData(e)) list.add(e.offset, e.length);

  async function* chunks(): AsyncGenerator<DataChunk> {
    const plan = reads(list, readSize);
    const queue: { offset: number; data: Promise<Buffer> }[] = [];
    const refill = () => {
      while (queue.length < maxInFlight) {
        const r = plan.next();
        if (r.done) return;
        const [offset, length] = r.value;
        const data = client.pread(offset, length);
        data.catch(() => undefined); // observed when its turn comes, or dropped on early exit
        queue.push({ offset, data });
      }
    };
    let done = 0;
    try {
      refill();
      while (queue.length > 0) {
        const head = queue.shift()!;
        const data = await head.data;
        refill();
        done += data.length;
        yield { offset: head.offset, data };
        opts.onProgress?.(done);
      }
    } finally {
      // The consumer stopped early or a read failed: let the reads already sent settle.
      await Promise.allSettled(queue.map((q) => q.data));
    }
  }

  return {
    capacity: client.size,
    dataBytes: list.total,
    dataExtents: list.count,
    chunks: { [Symbol.asyncIterator]: () => chunks() },
  };
}

/**
 * Connect to the NBD server on `socket` (the overlay) and describe its
 * content. `chunks` may be iterated more than once; each pass reads again.
 */
export async function openDiskContent(socket: string, opts: DiskContentOptions = {}): Promise<OverlayDiskContent> {
  const client = await NbdClient.connect({ socket }, { maxInFlight: opts.maxInFlight ?? DEFAULT_IN_FLIGHT });
  try {
    const content = await diskContentOf(client, opts);
    return { ...content, close: () => client.close() };
  } catch (e) {
    await client.close().catch(() => undefined);
    throw e;
  }
}
