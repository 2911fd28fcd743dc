/**
 * exporter/delta/block-hasher.ts with its real worker threads: the built
 * module from dist/ (test/global-setup.ts builds it; run from the sources the
 * worker file does not exist and the hasher falls back to the main thread).
 * One worker, and a pool that cuts each chunk into runs, give the entries the
 * main thread computes, block for block.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { digestBlocks, type BlockEntry } from '../../../ovf/delta/index.js';
import type { DataChunk } from '../../../ovf/types.js';
import { ROOT } from '../../helpers/cli.js';

type Hasher = typeof import('../../../exporter/delta/block-hasher.js');

const BS = 4096;
const BLOCKS = 700;
const CAP = BLOCKS * BS + 1000; // a short last block

/** A disk of data blocks and zero blocks, in chunks of a shared buffer as disk-content.ts lends them. */
function sharedDisk(): { whole: Buffer; chunks: () => AsyncGenerator<DataChunk> } {
  const whole = Buffer.from(new SharedArrayBuffer(CAP));
  for (let i = 0; i < BLOCKS; i++) if (i % 7 !== 3) whole.fill((i * 13) % 251 || 1, i * BS, i * BS + 100 + (i % 50));
  whole.fill(9, BLOCKS * BS);
  async function* chunks(): AsyncGenerator<DataChunk> {
    // Uneven chunk lengths: some cut into runs, some too short to cut, one ending in a part block.
    for (const [from, to] of [
      [0, 300],
      [300, 340],
      [340, 345],
      [345, BLOCKS],
    ] as const)
      yield { offset: from * BS, data: whole.subarray(from * BS, to === BLOCKS ? CAP : to * BS) };
  }
  return { whole, chunks };
}

async function entries(chunks: AsyncIterable<DataChunk>, hash?: Parameters<typeof digestBlocks>[3]) {
  const out: BlockEntry[] = [];
  for await (const batch of digestBlocks(chunks, CAP, BS, hash))
    for (const d of batch) for (let k = 0; k < d.count; k++) out.push(d.entry);
  return out;
}

describe('block hashing threads (exporter/delta/block-hasher.ts, built)', () => {
  it.each([1, 3])('%i worker(s) give the main thread’s entries', async (workers) => {
    const mod = (await import(pathToFileURL(join(ROOT, 'dist/exporter/delta/block-hasher.js')).href)) as Hasher;
    const disk = sharedDisk();
    const want = await entries(disk.chunks());
    const h = await mod.startBlockHasher(BS, workers);
    expect(h, 'the worker threads start from dist/').toBeDefined();
    let asked = 0;
    const counted: Parameters<typeof digestBlocks>[3] = (c) => {
      asked++;
      return h!.hash(c);
    };
    try {
      const got = await entries(disk.chunks(), counted);
      expect(asked).toBe(4);
      expect(got).toHaveLength(BLOCKS + 1);
      expect(got.filter((e) => e === null)).toHaveLength(100);
      expect(got).toEqual(want);
    } finally {
      await h!.close();
    }
  });
});
