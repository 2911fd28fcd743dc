/**
 * The block map (docs/design-delta.md): what a stager's base holds, one entry
 * per block, so an exporter can send only the blocks that differ. Layout:
 *
 *   "P2V-BLOCK-MAP 1\n"
 *   one JSON line: { name, state, blockSize, disks: [{ index, capacity, digest }] }
 *   then, disk after disk, one entry per block: 0x00 (all zeros) or 0x01 + SHA-256
 *
 * Written and read as a stream: a 500 GB disk's map (8 M blocks) is never held,
 * only the entry being looked at. Each disk's entries are checked against
 * the digest its header states as they are read; a map whose entries do not
 * give that digest is refused at that disk's end.
 */
import { P2vError } from '../../lib/errors.js';
import { ByteReader } from './byte-reader.js';
import type { EntryRun } from './block-digest.js';
import {
  blockCount,
  checkBlockSize,
  DIGEST_BYTES,
  DiskDigest,
  ENTRY_DATA,
  ENTRY_ZERO,
  type BlockEntry,
} from './format.js';

export const BLOCK_MAP_MAGIC = 'P2V-BLOCK-MAP 1';
const MAX_HEADER = 64 * 1024;
const HINT_MAP = 'fetch the map again with p2v-import --block-map NAME on the stager';

export interface BlockMapDisk {
  index: number;
  capacity: number;
  /** The disk's digest (hex): DiskDigest over its entries. */
  digest: string;
}

export interface BlockMapHeader {
  /** The machine the base belongs to. */
  name: string;
  /** 'complete': the last import finished; 'interrupted': it stopped part way (received blocks only). */
  state: 'complete' | 'interrupted';
  blockSize: number;
  disks: BlockMapDisk[];
}

/** The map's bytes: the header, then each disk's encoded entries as `entryBytes` gives them, in disk order. */
export async function* writeBlockMap(
  header: BlockMapHeader,
  entryBytes: (disk: number) => AsyncIterable<Buffer>,
): AsyncGenerator<Buffer> {
  yield Buffer.from(`${BLOCK_MAP_MAGIC}\n${JSON.stringify(header)}\n`);
  for (const d of header.disks) yield* entryBytes(d.index);
}

/**
 * Parse encoded entries from the front of `buf`, at most `max`: returns the
 * entries and the bytes they took (an entry cut at the end of `buf` is left).
 * Throws `bad` on an unknown tag.
 */
export function parseEntries(buf: Buffer, max: number, bad: (tag: number) => Error): [BlockEntry[], number] {
  const out: BlockEntry[] = [];
  let p = 0;
  while (out.length < max && p < buf.length) {
    const tag = buf[p]!;
    if (tag === ENTRY_ZERO) {
      out.push(null);
      p++;
    } else if (tag === ENTRY_DATA) {
      if (p + 1 + DIGEST_BYTES > buf.length) break;
      // A view, not a copy: stream chunks are never reused, and a copy per entry cost more than the compare.
      out.push(buf.subarray(p + 1, p + 1 + DIGEST_BYTES));
      p += 1 + DIGEST_BYTES;
    } else throw bad(tag);
  }
  return [out, p];
}

/**
 * Count whole entries at the front of `buf`, at most `max`, without building
 * them: returns [entries, bytes]. An entry cut at the end of `buf` is left;
 * `bad` makes the error for an unknown tag.
 */
export function scanEntries(buf: Buffer, max: number, bad: (tag: number) => Error): [number, number] {
  let n = 0;
  let p = 0;
  const len = buf.length;
  while (n < max && p < len) {
    const tag = buf[p]!;
    if (tag === ENTRY_ZERO) p++;
    else if (tag === ENTRY_DATA) {
      if (p + 1 + DIGEST_BYTES > len) break;
      p += 1 + DIGEST_BYTES;
    } else throw bad(tag);
    n++;
  }
  return [n, p];
}

function badMap(message: string): P2vError {
  return new P2vError('BAD_OVA', `block map: ${message}`, { hint: HINT_MAP });
}

function checkHeader(h: unknown): BlockMapHeader {
  const o = h as Partial<BlockMapHeader> | null;
  if (!o || typeof o !== 'object' || typeof o.name !== 'string' || !Array.isArray(o.disks))
    throw badMap('the header is not a block map header');
  if (o.state !== 'complete' && o.state !== 'interrupted') throw badMap('the header has no state');
  checkBlockSize(Number(o.blockSize), 'block map');
  o.disks.forEach((d, i) => {
    if (
      !d ||
      d.index !== i ||
      !Number.isSafeInteger(d.capacity) ||
      d.capacity <= 0 ||
      typeof d.digest !== 'string' ||
      !/^[0-9a-f]{64}$/.test(d.digest)
    )
      throw badMap(`disk ${i} in the header is malformed`);
  });
  return o as BlockMapHeader;
}

export interface BlockMapReader {
  header: BlockMapHeader;
  /**
   * Disk `index`'s entries in block order, in batches; disks must be read in
   * order, each to its end (where its digest is checked).
   */
  entries(index: number): AsyncGenerator<BlockEntry[]>;
  /** Disk `index`'s entries as encoded runs (EntryCursor compares them in place), digest checked at the end. */
  runs(index: number): AsyncGenerator<EntryRun>;
  /** Disk `index` read to its end and its digest checked, without building its entries (same order rule). */
  check(index: number): Promise<void>;
  /** Refuse trailing bytes after the last disk. */
  end(): Promise<void>;
}

export async function readBlockMap(source: AsyncIterable<Buffer>, what = 'the block map'): Promise<BlockMapReader> {
  const r = new ByteReader(source, what);
  const magic = await r.line(64).catch((e: unknown) => {
    if (e instanceof P2vError && e.code === 'TRUNCATED') throw e;
    return '';
  });
  if (magic !== BLOCK_MAP_MAGIC)
    throw new P2vError('BAD_OVA', `${what} is not a p2v block map`, {
      hint: 'give --base-map the output of p2v-import --block-map NAME',
    });
  let parsed: unknown;
  try {
    parsed = JSON.parse(await r.line(MAX_HEADER));
  } catch (e) {
    if (e instanceof P2vError) throw e;
    throw badMap('the header is not JSON');
  }
  const header = checkHeader(parsed);
  let nextDisk = 0;
  /** Disk `index`'s entry bytes in runs, each with its entry count (`parse`: also the entries), digest checked at the end. */
  async function* walk(index: number, parse: boolean): AsyncGenerator<BlockEntry[] | EntryRun> {
    if (index !== nextDisk) throw new Error(`block map disks are read in order (asked ${index}, next ${nextDisk})`);
    const d = header.disks[index]!;
    const digest = new DiskDigest(header.blockSize, d.capacity);
    let left = blockCount(d.capacity, header.blockSize);
    const bad = (tag: number) => badMap(`disk ${index}: unknown entry type ${tag} (damaged map)`);
    while (left > 0) {
      const buf = await r.peek(1 + DIGEST_BYTES);
      const [got, used] = parse ? parseEntries(buf, left, bad) : scanEntries(buf, left, bad);
      if (used === 0)
        throw new P2vError('TRUNCATED', `${what} ends early (disk ${index}, ${left} blocks short)`, {
          hint: HINT_MAP,
        });
      const bytes = buf.subarray(0, used);
      digest.addBytes(bytes);
      r.consume(used);
      left -= typeof got === 'number' ? got : got.length;
      // A view: the reader never reuses its buffers (it makes new ones as it reads).
      yield typeof got === 'number' ? { bytes, count: got } : got;
    }
    if (digest.hex() !== d.digest) throw badMap(`disk ${index}'s entries do not match its digest (damaged map)`);
    nextDisk++;
  }
  return {
    header,
    async *entries(index: number): AsyncGenerator<BlockEntry[]> {
      for await (const b of walk(index, true)) yield b as BlockEntry[];
    },
    async *runs(index: number): AsyncGenerator<EntryRun> {
      for await (const b of walk(index, false)) yield b as EntryRun;
    },
    async check(index: number): Promise<void> {
      for await (const _ of walk(index, false)) void _;
    },
    async end() {
      if (!(await r.atEnd())) throw badMap('bytes follow the last disk');
    },
  };
}

/** Read a whole map once, checking every digest (a map file is checked before it is used). */
export async function verifyBlockMap(source: AsyncIterable<Buffer>, what?: string): Promise<BlockMapHeader> {
  const m = await readBlockMap(source, what);
  for (const d of m.header.disks) await m.check(d.index);
  await m.end();
  return m.header;
}
