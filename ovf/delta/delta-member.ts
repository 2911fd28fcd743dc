/**
 * One disk of a delta (docs/design-delta.md): the blocks that differ from
 * the base, as records in ascending block order.
 *
 *   "P2V-DELTA 1\n"
 *   one JSON line: { index, capacity, blockSize, base, baseDigest }
 *   records:
 *     0x01 DATA  u64 block, u32 length, zlib-deflated block bytes
 *     0x02 ZERO  u64 first block, u64 count      (blocks that read as zeros now)
 *     0xFF END   u64 data blocks, u64 zero blocks, 32 bytes: the result's disk digest
 *
 * Blocks not named keep the base's bytes. The END record's digest is the
 * whole-disk digest (format.ts DiskDigest) of the disk after applying; the
 * importer recomputes it from the base map and the records and refuses a
 * mismatch, so a lost, reordered or corrupted record is caught even where
 * the OVA manifest would not be (it is checked as well).
 */
import { deflateSync, inflateSync } from 'node:zlib';
import { P2vError } from '../../lib/errors.js';
import { ByteReader } from './byte-reader.js';
import { EntryCursor, type DigestedBlock, type EntryRun } from './block-digest.js';
import { blockCount, blockLength, checkBlockSize, DIGEST_BYTES, DiskDigest, type BlockEntry } from './format.js';

export const DELTA_MAGIC = 'P2V-DELTA 1';
const REC_DATA = 0x01;
const REC_ZERO = 0x02;
const REC_END = 0xff;
const HINT_DELTA = 'the delta was damaged or cut short in transit; the base is untouched: send it again';

/**
 * One block deflated for a DATA record. Synchronous, with a window just
 * larger than the block: zlib's asynchronous form costs a thread-pool hop
 * and a fresh 256 KiB state per call, 0.5–1.1 s for 843 blocks of 4 KiB
 * where this takes 35–60 ms (bench/README.md). Any zlib inflater reads it.
 */
export function deflateBlock(block: Buffer, level: number): Buffer {
  const windowBits = Math.min(15, Math.max(9, Math.ceil(Math.log2(block.length || 1)) + 1));
  return deflateSync(block, { level, windowBits });
}

/** Blocks a failed try covers (stored, unless they look compressible); doubles per failed try, to MAX_SKIP. */
const FIRST_SKIP = 8;
const MAX_SKIP = 64;
/** Bytes of a block sampleEntropy looks at, evenly spaced. */
const ENTROPY_SAMPLES = 1024;
/**
 * Below this many bits per byte a skipped block is tried anyway. A sample of
 * random bytes measures 7.8 (1024 samples of 256 values); a block ending in a
 * file's zero tail of a fifth or more, base64 (6) and text (4–5) fall below.
 */
const INCOMPRESSIBLE_BITS = 7.5;

/** Bits per byte of the byte histogram of an even sample of `block` (order-0 Shannon entropy). */
export function sampleEntropy(block: Buffer): number {
  const step = Math.max(1, Math.floor(block.length / ENTROPY_SAMPLES));
  const counts = new Uint16Array(256);
  let n = 0;
  for (let i = 0; i < block.length; i += step, n++) counts[block[i]!]!++;
  let bits = 0;
  for (const c of counts) if (c) bits -= (c / n) * Math.log2(c / n);
  return bits;
}

/**
 * Deflates the DATA blocks of a delta, but stops trying on a run of blocks
 * that do not shrink. Incompressible blocks (already compressed files,
 * encrypted data, media) are the slow case of zlib: 1024 random 4 KiB blocks
 * take 75–160 ms at level 1 and 17–33 ms stored, on the exporter's main
 * thread, for no byte saved. After a block that did not shrink, the next
 * `skip` blocks of the same run of consecutive blocks are stored (level 0:
 * still a zlib stream, read as any other) unless their sampled entropy says
 * they would shrink (a file's last block, half zeros); `skip` doubles while
 * tries keep failing and starts over at a block that shrinks or after a gap,
 * where a new file likely begins.
 */
export class BlockPacker {
  private skip = 0;
  private nextSkip = FIRST_SKIP;
  private next = -1;
  /** Blocks deflated at the asked level (the others were stored). */
  tries = 0;
  constructor(private readonly level: number) {}

  pack(index: number, block: Buffer): Buffer {
    if (index !== this.next) {
      this.skip = 0;
      this.nextSkip = FIRST_SKIP;
    }
    this.next = index + 1;
    if (this.level === 0) return deflateBlock(block, 0);
    if (this.skip > 0) {
      this.skip--;
      if (sampleEntropy(block) >= INCOMPRESSIBLE_BITS) return deflateBlock(block, 0);
    }
    this.tries++;
    const packed = deflateBlock(block, this.level);
    if (packed.length < block.length) {
      this.skip = 0;
      this.nextSkip = FIRST_SKIP;
    } else {
      this.skip = this.nextSkip;
      this.nextSkip = Math.min(MAX_SKIP, this.nextSkip * 2);
    }
    return packed;
  }
}

export interface DeltaHeader {
  index: number;
  capacity: number;
  blockSize: number;
  /** The machine name of the base. */
  base: string;
  /** The base disk's digest (hex). */
  baseDigest: string;
}

export interface DeltaStats {
  /** Blocks sent with their data. */
  dataBlocks: number;
  /** Blocks sent as zeros. */
  zeroBlocks: number;
  /** Blocks that hold data in the new disk (whatever was sent). */
  newDataBlocks: number;
  /** The result's disk digest (hex), set once the member is written. */
  resultDigest?: string;
}

type Decision = { kind: 'data'; index: number; data: Buffer } | { kind: 'zero'; index: number };

/**
 * The member's bytes. `blocks` are the new disk's blocks (digestBlocks), `base`
 * the base map's entries for the same disk; both in block order, both
 * consumed to their end.
 */
export function writeDeltaMember(
  header: DeltaHeader,
  blocks: AsyncIterable<DigestedBlock[]>,
  base: AsyncIterable<BlockEntry[] | EntryRun>,
  opts: { level?: number } = {},
): { bytes: AsyncIterable<Buffer>; stats: DeltaStats } {
  const stats: DeltaStats = { dataBlocks: 0, zeroBlocks: 0, newDataBlocks: 0 };
  const result = new DiskDigest(header.blockSize, header.capacity);
  async function* decisions(): AsyncGenerator<Decision> {
    const cur = new EntryCursor(base[Symbol.asyncIterator]());
    const fewer = () => new P2vError('BAD_OVA', 'block map: fewer blocks than the disk', { hint: HINT_DELTA });
    for await (const batch of blocks) {
      const out: Decision[] = [];
      for (const b of batch) {
        if (b.entry === null) result.addZeros(b.count);
        else {
          result.add(b.entry);
          stats.newDataBlocks++;
        }
        for (let k = 0; k < b.count; k++) {
          if (!cur.has() && !(await cur.fill())) throw fewer();
          if (cur.takeSame(b.entry)) continue;
          if (b.entry === null) out.push({ kind: 'zero', index: b.index + k });
          // Copied: the block may be a view into a chunk its reader lends and reuses (disk-content.ts `lend`).
          else out.push({ kind: 'data', index: b.index, data: Buffer.from(b.data!) });
        }
      }
      yield* out;
    }
    if (await cur.fill()) throw new P2vError('BAD_OVA', 'block map: more blocks than the disk', { hint: HINT_DELTA });
  }
  const packer = new BlockPacker(opts.level ?? 1);
  async function* packedDecisions(): AsyncGenerator<Decision> {
    for await (const d of decisions()) yield d.kind === 'data' ? { ...d, data: packer.pack(d.index, d.data) } : d;
  }
  const packed = packedDecisions();
  async function* bytes(): AsyncGenerator<Buffer> {
    yield Buffer.from(`${DELTA_MAGIC}\n${JSON.stringify(header)}\n`);
    let run: { first: number; count: number } | null = null;
    const zeroRecord = (z: { first: number; count: number }) => {
      const b = Buffer.alloc(17);
      b[0] = REC_ZERO;
      b.writeBigUInt64BE(BigInt(z.first), 1);
      b.writeBigUInt64BE(BigInt(z.count), 9);
      stats.zeroBlocks += z.count;
      return b;
    };
    for await (const d of packed) {
      if (d.kind === 'zero') {
        if (run && run.first + run.count === d.index) run.count++;
        else {
          if (run) yield zeroRecord(run);
          run = { first: d.index, count: 1 };
        }
        continue;
      }
      if (run) {
        yield zeroRecord(run);
        run = null;
      }
      const head = Buffer.alloc(13);
      head[0] = REC_DATA;
      head.writeBigUInt64BE(BigInt(d.index), 1);
      head.writeUInt32BE(d.data.length, 9);
      stats.dataBlocks++;
      yield Buffer.concat([head, d.data]);
    }
    if (run) yield zeroRecord(run);
    const end = Buffer.alloc(17 + DIGEST_BYTES);
    end[0] = REC_END;
    end.writeBigUInt64BE(BigInt(stats.dataBlocks), 1);
    end.writeBigUInt64BE(BigInt(stats.zeroBlocks), 9);
    stats.resultDigest = result.hex();
    Buffer.from(stats.resultDigest, 'hex').copy(end, 17);
    yield end;
  }
  return { bytes: bytes(), stats };
}

export type DeltaRecord =
  { kind: 'data'; index: number; data: Buffer } | { kind: 'zero'; first: number; count: number };

export interface DeltaMemberReader {
  header: DeltaHeader;
  /** The records in order, each checked (ascending, in range, inflating to exactly its block). */
  records(): AsyncGenerator<DeltaRecord>;
  /** After `records` ended: the result's digest the END record states. */
  readonly resultDigest: string;
}

function bad(what: string, message: string): P2vError {
  return new P2vError('BAD_OVA', `${what}: ${message}`, { hint: HINT_DELTA });
}

export async function readDeltaMember(source: AsyncIterable<Buffer>, what: string): Promise<DeltaMemberReader> {
  const r = new ByteReader(source, what);
  if ((await r.line(64)) !== DELTA_MAGIC) throw bad(what, 'not a p2v delta disk');
  let h: DeltaHeader;
  try {
    h = JSON.parse(await r.line(4096)) as DeltaHeader;
  } catch {
    throw bad(what, 'its header is not JSON');
  }
  if (
    !Number.isSafeInteger(h.index) ||
    !Number.isSafeInteger(h.capacity) ||
    h.capacity <= 0 ||
    typeof h.base !== 'string' ||
    !/^[0-9a-f]{64}$/.test(String(h.baseDigest))
  )
    throw bad(what, 'its header is malformed');
  checkBlockSize(h.blockSize, what);
  const count = blockCount(h.capacity, h.blockSize);
  let resultDigest = '';
  return {
    header: h,
    get resultDigest() {
      return resultDigest;
    },
    async *records(): AsyncGenerator<DeltaRecord> {
      let next = 0;
      let data = 0;
      let zero = 0;
      for (;;) {
        const tag = (await r.read(1))[0];
        if (tag === REC_END) {
          const end = await r.read(16 + DIGEST_BYTES);
          if (Number(end.readBigUInt64BE(0)) !== data || Number(end.readBigUInt64BE(8)) !== zero)
            throw bad(what, 'its record counts do not match (records lost)');
          resultDigest = end.subarray(16).toString('hex');
          if (!(await r.atEnd())) throw bad(what, 'bytes follow its end record');
          return;
        }
        if (tag === REC_DATA) {
          const head = await r.read(12);
          const index = Number(head.readBigUInt64BE(0));
          const length = head.readUInt32BE(8);
          if (index < next || index >= count) throw bad(what, `block ${index} is out of order or past the disk`);
          if (length > h.blockSize + 1024) throw bad(what, `block ${index} is larger than a block`);
          const expected = blockLength(index, h.capacity, h.blockSize);
          const packed = await r.read(length);
          let block: Buffer;
          try {
            block = inflateSync(packed, { maxOutputLength: expected });
          } catch {
            throw bad(what, `block ${index} does not inflate (corrupted)`);
          }
          if (block.length !== expected)
            throw bad(what, `block ${index} inflates to ${block.length} bytes, not ${expected}`);
          next = index + 1;
          data++;
          yield { kind: 'data', index, data: block };
        } else if (tag === REC_ZERO) {
          const body = await r.read(16);
          const first = Number(body.readBigUInt64BE(0));
          const n = Number(body.readBigUInt64BE(8));
          if (first < next || n <= 0 || first + n > count)
            throw bad(what, `zero run at block ${first} is out of order or past the disk`);
          next = first + n;
          zero += n;
          yield { kind: 'zero', first, count: n };
        } else throw bad(what, `unknown record type ${tag}`);
      }
    },
  };
}
