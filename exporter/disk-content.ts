/**
 * The overlay's bytes as DataChunks for the ovf/ writers. Block status is
 * asked first, for the whole disk: it gives the data extents to read (holes
 * and zero extents are skipped, they are gaps of zeros to the writers) and
 * their total, which the OVF descriptor wants as populatedSize before any
 * byte is written. The reads are then pipelined, a bounded number in flight,
 * and yielded in ascending offset order as the consumer pulls them, so memory
 * stays at about maxInFlight × readSize whatever the disk size.
 *
 * The same pipeline streams a fitted disk (exporter/fit/layout-content.ts):
 * a ContentMap says which target range reads which overlay range and which
 * bytes come from memory; the plain export is the identity map.
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
  /**
   * Lend the chunks, `lend` at a time: a chunk's buffer stays valid until
   * `lend` more chunks are pulled, then serves a later read (a pool of
   * maxInFlight + lend). For a consumer that looks at each chunk once and
   * copies what it keeps (the delta digester, which holds two: one being
   * compared while the next is hashed): fresh 2 MiB buffers cost a page
   * fault per 4 KiB. 0 or absent: every chunk is a buffer of its own.
   */
  lend?: number;
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

/**
 * Where the bytes of the disk we stream come from. The plain export is one
 * range, the whole overlay at the same offsets; a fitted disk (exporter/fit)
 * maps each partition's target range to its place in the overlay and serves
 * its partition table from memory. Whatever no range or patch covers reads
 * as zeros.
 */
export interface ContentMap {
  /** Size of the disk we stream. */
  capacity: number;
  /** Target range [target, target + length) reads the overlay from `source`. Disjoint on the target. */
  ranges: readonly OverlayRange[];
  /** Bytes served from memory at a target offset; a patch wins over any range under it. Disjoint. */
  patches: readonly MemoryPatch[];
}

export interface OverlayRange {
  target: number;
  length: number;
  source: number;
}

export interface MemoryPatch {
  offset: number;
  data: Buffer;
}

/**
 * The runs to stream as (target, length, source) triples in a growable
 * typed array: 24 bytes per run even on a badly fragmented disk. A source
 * below 0 names patch number -source-1; adjacent overlay runs that are
 * contiguous on both sides merge.
 */
class RunList {
  private a = new Float64Array(3 * 256);
  count = 0;
  total = 0;

  add(target: number, length: number, source: number): void {
    if (length <= 0) return;
    const last = this.count - 1;
    const merges =
      last >= 0 &&
      source >= 0 &&
      this.a[3 * last + 2]! >= 0 &&
      this.a[3 * last]! + this.a[3 * last + 1]! === target &&
      this.a[3 * last + 2]! + this.a[3 * last + 1]! === source;
    if (merges) {
      this.a[3 * last + 1]! += length;
    } else {
      if (3 * this.count + 3 > this.a.length) {
        const b = new Float64Array(this.a.length * 2);
        b.set(this.a);
        this.a = b;
      }
      this.a[3 * this.count] = target;
      this.a[3 * this.count + 1] = length;
      this.a[3 * this.count + 2] = source;
      this.count++;
    }
    this.total += length;
  }

  target(i: number): number {
    return this.a[3 * i]!;
  }

  length(i: number): number {
    return this.a[3 * i + 1]!;
  }

  source(i: number): number {
    return this.a[3 * i + 2]!;
  }
}

/** Bytes the writers must see: everything that does not read as zeros. */
export function isData(e: NbdExtent): boolean {
  return !e.zero;
}

/** A read of the plan: `length` target bytes at `target`, from the overlay at `source` or from patch -source-1. */
type Read = [target: number, length: number, source: number];

/** The reads covering the runs, split at multiples of `readSize` (on the target). */
function* reads(list: RunList, readSize: number): Generator<Read> {
  for (let i = 0; i < list.count; i++) {
    const start = list.target(i);
    const end = start + list.length(i);
    const source = list.source(i);
    let at = start;
    while (at < end) {
      const next = Math.min(end, (Math.floor(at / readSize) + 1) * readSize);
      yield [at, next - at, source < 0 ? source : source + (at - start)];
      at = next;
    }
  }
}

function checkMap(map: ContentMap, overlaySize: number): void {
  const bad = (why: string) => new RangeError(`content map: ${why}`);
  const ranges = [...map.ranges].sort((x, y) => x.target - y.target);
  let end = 0;
  for (const r of ranges) {
    if (r.target < end) throw bad(`ranges overlap at ${r.target}`);
    if (r.target + r.length > map.capacity) throw bad(`a range ends at ${r.target + r.length}, past ${map.capacity}`);
    if (r.source < 0 || r.source + r.length > overlaySize)
      throw bad(`a range reads the overlay up to ${r.source + r.length}, and it has ${overlaySize} bytes`);
    end = r.target + r.length;
  }
  end = 0;
  for (const p of map.patches) {
    if (p.offset < end) throw bad(`patches overlap or are out of order at ${p.offset}`);
    if (p.offset + p.data.length > map.capacity) throw bad(`a patch ends past ${map.capacity}`);
    end = p.offset + p.data.length;
  }
}

/**
 * The runs to stream: block status over each range's overlay bytes (holes
 * and zero extents dropped), moved to target offsets, with the patches cut
 * in. Ranges are visited in target order, so the list comes out ascending.
 */
async function runsOf(client: NbdClient, map: ContentMap): Promise<RunList> {
  checkMap(map, client.size);
  const list = new RunList();
  const patches = map.patches;
  let nextPatch = 0;
  /** Patches lying before `target` go in first (none overlaps a run: runs are cut around them). */
  const patchesBefore = (target: number) => {
    while (nextPatch < patches.length && patches[nextPatch]!.offset < target) {
      const p = patches[nextPatch]!;
      list.add(p.offset, p.data.length, -1 - nextPatch);
      nextPatch++;
    }
  };
  const addData = (target: number, length: number, source: number) => {
    let at = target;
    const end = target + length;
    for (let i = nextPatch; i < patches.length && patches[i]!.offset < end; i++) {
      const p = patches[i]!;
      const pEnd = p.offset + p.data.length;
      if (pEnd <= at) continue;
      if (p.offset > at) {
        patchesBefore(at);
        list.add(at, p.offset - at, source + (at - target));
      }
      at = Math.max(at, pEnd);
    }
    if (at < end) {
      patchesBefore(at);
      list.add(at, end - at, source + (at - target));
    }
  };
  for (const r of [...map.ranges].sort((x, y) => x.target - y.target)) {
    let at = r.source;
    const end = r.source + r.length;
    while (at < end) {
      const extents = await client.blockStatus(at, end - at);
      for (const e of extents) if (isData(e)) addData(r.target + (e.offset - r.source), e.length, e.offset);
      at = extents[extents.length - 1]!.offset + extents[extents.length - 1]!.length;
    }
  }
  patchesBefore(Infinity);
  return list;
}

/**
 * DiskContent of a mapped disk over an already connected client (the caller
 * keeps ownership of it): block status for every mapped range first, then
 * pipelined reads in ascending target order.
 */
export async function mappedContentOf(
  client: NbdClient,
  map: ContentMap,
  opts: DiskContentOptions = {},
): Promise<DiskContent & { dataBytes: number; dataExtents: number }> {
  const readSize = opts.readSize ?? DEFAULT_READ_SIZE;
  const maxInFlight = Math.max(1, opts.maxInFlight ?? DEFAULT_IN_FLIGHT);
  if (!Number.isSafeInteger(readSize) || readSize <= 0)
    throw new RangeError(`readSize must be a positive integer, not ${readSize}`);
  const list = await runsOf(client, map);
  const patches = map.patches;

  async function* chunks(): AsyncGenerator<DataChunk> {
    const plan = reads(list, readSize);
    const queue: { offset: number; data: Promise<Buffer>; lent?: Buffer }[] = [];
    const pool: Buffer[] = [];
    const lentOut: Buffer[] = [];
    const lendDepth = Math.max(0, Math.floor(opts.lend ?? 0));
    const refill = () => {
      while (queue.length < maxInFlight) {
        const r = plan.next();
        if (r.done) return;
        const [offset, length, source] = r.value;
        let data: Promise<Buffer>;
        let lent: Buffer | undefined;
        if (source >= 0 && lendDepth > 0) {
          // Shared memory: a worker thread can digest the chunk without a copy (exporter/delta/block-hasher.ts).
          lent = pool.pop() ?? Buffer.from(new SharedArrayBuffer(readSize));
          const into = lent.subarray(0, length);
          data = client.preadInto(source, into).then(() => into);
          data.catch(() => undefined);
        } else if (source >= 0) {
          data = client.pread(source, length);
          data.catch(() => undefined); // observed when its turn comes, or dropped on early exit
        } else {
          const p = patches[-1 - source]!;
          data = Promise.resolve(p.data.subarray(offset - p.offset, offset - p.offset + length));
        }
        queue.push({ offset, data, lent });
      }
    };
    let done = 0;
    try {
      refill();
      while (queue.length > 0) {
        const head = queue.shift()!;
        const data = await head.data;
        // The consumer is done with the oldest chunk it holds: its buffer serves the next read.
        if (head.lent) lentOut.push(head.lent);
        if (lentOut.length > lendDepth) pool.push(lentOut.shift()!);
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
    capacity: map.capacity,
    dataBytes: list.total,
    dataExtents: list.count,
    chunks: { [Symbol.asyncIterator]: () => chunks() },
  };
}

/** DiskContent of the whole overlay as it is, over an already connected client (the caller keeps ownership of it). */
export function diskContentOf(
  client: NbdClient,
  opts: DiskContentOptions = {},
): Promise<DiskContent & { dataBytes: number; dataExtents: number }> {
  const whole = { capacity: client.size, ranges: [{ target: 0, length: client.size, source: 0 }], patches: [] };
  return mappedContentOf(client, whole, opts);
}

/**
 * Connect to the NBD server on `socket` and describe the disk `map` makes
 * of it (the whole overlay when absent). `chunks` may be iterated more than
 * once; each pass reads again.
 */
export async function openMappedContent(
  socket: string,
  map: ((overlaySize: number) => ContentMap) | undefined,
  opts: DiskContentOptions = {},
): Promise<OverlayDiskContent> {
  const client = await NbdClient.connect({ socket }, { maxInFlight: opts.maxInFlight ?? DEFAULT_IN_FLIGHT });
  try {
    const content = map ? await mappedContentOf(client, map(client.size), opts) : await diskContentOf(client, opts);
    return { ...content, close: () => client.close() };
  } catch (e) {
    await client.close().catch(() => undefined);
    throw e;
  }
}

/**
 * Connect to the NBD server on `socket` (the overlay) and describe its
 * content. `chunks` may be iterated more than once; each pass reads again.
 */
export function openDiskContent(socket: string, opts: DiskContentOptions = {}): Promise<OverlayDiskContent> {
  return openMappedContent(socket, undefined, opts);
}
