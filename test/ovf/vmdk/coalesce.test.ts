import { describe, it, expect } from 'vitest';
import { coalesceChunks, type ChunkRun } from '../../../ovf/vmdk/index.js';
import type { DataChunk } from '../../../ovf/types.js';

async function runs(chunks: DataChunk[], max: number): Promise<{ offset: number; length: number; n: number }[]> {
  const out: ChunkRun[] = [];
  for await (const r of coalesceChunks(
    (async function* () {
      yield* chunks;
    })(),
    max,
  ))
    out.push(r);
  return out.map((r) => ({ offset: r.offset, length: r.length, n: r.buffers.length }));
}

describe('coalesceChunks', () => {
  it('merges adjacent chunks up to the limit and splits at gaps', async () => {
    const c = (offset: number, n: number): DataChunk => ({ offset, data: Buffer.alloc(n, 1) });
    expect(await runs([c(0, 10), c(10, 10), c(20, 10), c(40, 5), c(45, 5)], 25)).toEqual([
      { offset: 0, length: 20, n: 2 },
      { offset: 20, length: 10, n: 1 },
      { offset: 40, length: 10, n: 2 },
    ]);
    expect(await runs([], 25)).toEqual([]);
  });
});
