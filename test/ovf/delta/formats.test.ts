/**
 * The delta formats on their own (ovf/delta): a block map and a delta member
 * written and read back as streams, the result digest the importer
 * recomputes, and damaged input refused with one line.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { inflateSync } from 'node:zlib';
import {
  BlockPacker,
  blockCount,
  sampleEntropy,
  digestBlocks,
  DiskDigest,
  EntryCursor,
  entryOf,
  readBlockMap,
  readDeltaMember,
  ResultMap,
  verifyBlockMap,
  writeBlockMap,
  writeDeltaMember,
  type BlockEntry,
  type DigestedBlock,
} from '../../../ovf/delta/index.js';
import type { DataChunk } from '../../../ovf/types.js';

const BS = 4096;
const CAP = 64 * BS + 512; // a short last block

function disk(seed: number, blocks: number[]): Buffer {
  const b = Buffer.alloc(CAP);
  for (const i of blocks) b.fill((seed + i) % 255 || 1, i * BS, Math.min(CAP, (i + 1) * BS));
  return b;
}

async function* chunksOf(b: Buffer): AsyncGenerator<DataChunk> {
  // Odd-sized chunks, skipping all-zero ones, so blocks straddle chunks.
  for (let off = 0; off < b.length; off += 3000) {
    const data = Buffer.from(b.subarray(off, Math.min(b.length, off + 3000)));
    if (data.some((x) => x !== 0)) yield { offset: off, data };
  }
}

async function entries(b: Buffer): Promise<BlockEntry[]> {
  const out: BlockEntry[] = [];
  for await (const batch of digestBlocks(chunksOf(b), CAP, BS))
    for (const d of batch as DigestedBlock[]) for (let k = 0; k < d.count; k++) out.push(d.entry);
  return out;
}

function digestOf(es: BlockEntry[]): string {
  const d = new DiskDigest(BS, CAP);
  for (const e of es) d.add(e);
  return d.hex();
}

async function mapBytes(es: BlockEntry[]): Promise<Buffer> {
  const enc = encoded(es);
  const parts: Buffer[] = [];
  const header = {
    name: 'web1',
    state: 'complete' as const,
    blockSize: BS,
    disks: [{ index: 0, capacity: CAP, digest: digestOf(es) }],
  };
  for await (const p of writeBlockMap(header, () => src(enc))) parts.push(p);
  return Buffer.concat(parts);
}

async function* src(...bufs: Buffer[]): AsyncGenerator<Buffer> {
  for (const b of bufs) yield b;
}

function encoded(es: BlockEntry[]): Buffer {
  return Buffer.concat(es.map((e) => (e === null ? Buffer.of(0) : Buffer.concat([Buffer.of(1), e]))));
}

/** Bytes in pieces that cut entries in two, as a file stream may. */
async function* pieces(b: Buffer, size = 50): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

async function* batched(es: BlockEntry[]): AsyncGenerator<BlockEntry[]> {
  for (let i = 0; i < es.length; i += 7) yield es.slice(i, i + 7);
}

describe('ovf/delta formats', () => {
  it('digests blocks whatever the chunking: holes and zero data are ZERO, the short last block counts', async () => {
    const a = disk(1, [0, 5, 6, 64]);
    const es = await entries(a);
    expect(es.length).toBe(blockCount(CAP, BS));
    expect(es.length).toBe(65);
    expect(es.filter((e) => e !== null).length).toBe(4);
    expect(es[5]).toEqual(entryOf(a.subarray(5 * BS, 6 * BS)));
    expect(es[64]).toEqual(entryOf(a.subarray(64 * BS)));
  });

  it('takes whole-block entries computed elsewhere (the exporter worker thread) and gives the same blocks', async () => {
    const a = disk(1, [0, 5, 6, 20, 64]);
    // Block-aligned chunks of 3 blocks (the last one short), as the overlay reader hands them out.
    async function* aligned(): AsyncGenerator<DataChunk> {
      for (let off = 0; off < CAP; off += 3 * BS)
        yield { offset: off, data: Buffer.from(a.subarray(off, off + 3 * BS)) };
    }
    let asked = 0;
    const hasher = async (c: DataChunk) => {
      asked++;
      const n = Math.floor(c.data.length / BS);
      const out = Buffer.alloc(n * 33);
      for (let k = 0; k < n; k++) {
        const e = entryOf(c.data.subarray(k * BS, (k + 1) * BS));
        if (e) {
          out[k * 33] = 1;
          e.copy(out, k * 33 + 1);
        }
      }
      return out;
    };
    const got: BlockEntry[] = [];
    for await (const batch of digestBlocks(aligned(), CAP, BS, hasher))
      for (const d of batch) for (let k = 0; k < d.count; k++) got.push(d.entry);
    expect(asked).toBeGreaterThan(0);
    expect(got).toEqual(await entries(a));
  });

  it('stops deflating a run of blocks that do not shrink, but not blocks that look compressible', () => {
    const random = () => randomBytes(BS);
    const text = (i: number) => Buffer.from(`block ${i} `.repeat(BS)).subarray(0, BS);
    // A file's last block: a fifth of data, then zeros.
    const tail = () => Buffer.concat([randomBytes(BS / 5), Buffer.alloc(BS - BS / 5)]);
    expect(sampleEntropy(random())).toBeGreaterThan(7.5);
    expect(sampleEntropy(tail())).toBeLessThan(7.5);
    expect(sampleEntropy(text(1))).toBeLessThan(7.5);
    const p = new BlockPacker(1);
    const packed: [Buffer, Buffer][] = [];
    const pack = (index: number, raw: Buffer) => {
      const out = p.pack(index, raw);
      packed.push([raw, out]);
      return out;
    };
    // 40 incompressible blocks in a row: tried at 0, then after 8 stored, then after 16 stored.
    for (let i = 0; i < 40; i++) pack(100 + i, random());
    expect(p.tries).toBe(3);
    // In the same run, a mostly-zero block is tried anyway, shrinks, and ends the skipping.
    expect(pack(140, tail()).length).toBeLessThan(BS / 2);
    expect(p.tries).toBe(4);
    pack(141, random());
    expect(p.tries).toBe(5);
    // After a gap: tried again, and text shrinks every time.
    for (let i = 0; i < 5; i++) expect(pack(200 + i, text(i)).length).toBeLessThan(BS / 4);
    expect(p.tries).toBe(10);
    for (const [raw, out] of packed) expect(inflateSync(out)).toEqual(raw);
    // Level 0 never tries.
    const stored = new BlockPacker(0);
    expect(inflateSync(stored.pack(0, text(0)))).toEqual(text(0));
    expect(stored.tries).toBe(0);
  });

  it('writes and reads a map as a stream, and refuses a damaged one', async () => {
    const es = await entries(disk(1, [0, 3, 40]));
    const bytes = await mapBytes(es);
    const h = await verifyBlockMap(src(bytes.subarray(0, 100), bytes.subarray(100)));
    expect(h.disks[0]!.digest).toBe(digestOf(es));
    const bad = Buffer.from(bytes);
    bad[bad.length - 3]! ^= 0x55;
    await expect(verifyBlockMap(src(bad))).rejects.toThrow(/do not match its digest|unknown entry/);
    await expect(verifyBlockMap(src(bytes.subarray(0, bytes.length - 10)))).rejects.toThrow(/ends early/);
    await expect(readBlockMap(src(Buffer.from('not a map\n')))).rejects.toThrow(/not a p2v block map/);
    // The same entries read as encoded runs and compared in place (the exporter's way).
    const m = await readBlockMap(src(bytes.subarray(0, 77), bytes.subarray(77)));
    const cur = new EntryCursor(m.runs(0)[Symbol.asyncIterator]());
    const other = entryOf(Buffer.alloc(BS, 9));
    for (const e of es) {
      expect(cur.has() || (await cur.fill())).toBe(true);
      expect(cur.takeSame(e)).toBe(true);
    }
    expect(await cur.fill()).toBe(false);
    const again = await readBlockMap(src(bytes));
    const cur2 = new EntryCursor(again.runs(0)[Symbol.asyncIterator]());
    await cur2.fill();
    expect(cur2.takeSame(es[0] === null ? other : null)).toBe(false);
  });

  it('a delta applied to the base gives the new disk, and its END digest is the result digest', async () => {
    const base = disk(1, [0, 3, 10, 11, 40, 64]);
    const next = disk(1, [0, 3, 40, 64]); // 10, 11 now holes
    next.fill(9, 3 * BS + 100, 3 * BS + 200); // block 3 changed
    next.fill(7, 20 * BS, 21 * BS); // block 20 new
    const baseEs = await entries(base);
    const m = writeDeltaMember(
      { index: 0, capacity: CAP, blockSize: BS, base: 'web1', baseDigest: digestOf(baseEs) },
      digestBlocks(chunksOf(next), CAP, BS),
      batched(baseEs),
    );
    const parts: Buffer[] = [];
    for await (const p of m.bytes) parts.push(p);
    expect(m.stats).toMatchObject({ dataBlocks: 2, zeroBlocks: 2 });
    const bytes = Buffer.concat(parts);
    // Apply onto a copy of the base and recompute the result's digest as the importer does.
    const r = await readDeltaMember(src(bytes), 'delta');
    const applied = Buffer.from(base);
    const written: Buffer[] = [];
    const result = new ResultMap(pieces(encoded(baseEs)), r.header, (b) => void written.push(Buffer.from(b)));
    for await (const rec of r.records()) {
      if (rec.kind === 'data') {
        rec.data.copy(applied, rec.index * BS);
        await result.set(rec.index, entryOf(rec.data));
      } else
        for (let i = rec.first; i < rec.first + rec.count; i++) {
          applied.fill(0, i * BS, (i + 1) * BS);
          await result.set(i, null);
        }
    }
    expect(applied.equals(next)).toBe(true);
    expect(await result.finish()).toBe(r.resultDigest);
    expect(r.resultDigest).toBe(digestOf(await entries(next)));
    // The result's map is the new disk's entries, byte for byte.
    expect(Buffer.concat(written).equals(encoded(await entries(next)))).toBe(true);
    // A base map short of a block, or with a stray byte, is refused.
    const short = new ResultMap(pieces(encoded(baseEs.slice(0, -1))), r.header, () => undefined);
    await expect(short.finish()).rejects.toThrow(/fewer blocks/);
    const long = new ResultMap(pieces(Buffer.concat([encoded(baseEs), Buffer.of(0)])), r.header, () => undefined);
    await expect(long.finish()).rejects.toThrow(/more blocks/);
    // Truncated, and a record flipped: refused.
    const cut = await readDeltaMember(src(bytes.subarray(0, bytes.length - 40)), 'delta');
    await expect(
      (async () => {
        for await (const _ of cut.records()) void _;
      })(),
    ).rejects.toThrow(/ends early/);
    const flipped = Buffer.from(bytes);
    flipped[bytes.indexOf(0x01, 80) + 20]! ^= 0xff;
    const fr = await readDeltaMember(src(flipped), 'delta');
    await expect(
      (async () => {
        for await (const _ of fr.records()) void _;
      })(),
    ).rejects.toThrow(/delta: /);
  });
});
