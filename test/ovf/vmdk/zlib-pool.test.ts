import { describe, it, expect } from 'vitest';
import { deflateSync } from 'node:zlib';
import { ZlibPool, chooseEngine, threadpoolSize } from '../../../ovf/vmdk/index.js';

describe('ZlibPool', () => {
  it('deflates and inflates batches in worker threads, reporting errors per item', async () => {
    const pool = new ZlibPool(2);
    try {
      const inputs = [Buffer.alloc(65536, 'x'), Buffer.from('short'), Buffer.alloc(0)];
      const deflated = await pool.run('deflate', inputs, { level: 6 });
      expect(deflated.map((r) => r.error)).toEqual([undefined, undefined, undefined]);
      const inflated = await pool.run(
        'inflate',
        [...deflated.map((r) => r.data!), Buffer.from('junk'), deflateSync(Buffer.alloc(200_000))],
        {
          maxOutputLength: 65536,
        },
      );
      expect(inflated.slice(0, 3).map((r) => r.data)).toEqual(inputs);
      expect(inflated[3]!.error).toEqual({ code: 'Z_DATA_ERROR', message: 'incorrect header check' });
      expect(inflated[4]!.error?.code).toBe('ERR_BUFFER_TOO_LARGE');
    } finally {
      await pool.close();
    }
    await expect(pool.run('deflate', [Buffer.from('x')], {})).rejects.toThrow('ZlibPool is closed');
  });

  it('picks the threadpool up to its thread count and workers beyond', () => {
    expect(chooseEngine(1)).toBe('threadpool');
    expect(chooseEngine(threadpoolSize())).toBe('threadpool');
    expect(chooseEngine(threadpoolSize() + 1)).toBe('workers');
  });
});

describe('ZlibPool buffer reuse', () => {
  it('keeps every batch intact when packed inputs are reused across many concurrent batches', async () => {
    const pool = new ZlibPool(2);
    try {
      const grains = Array.from({ length: 200 }, (_, i) => {
        const g = Buffer.alloc(65536, i % 7 === 0 ? 0 : (i * 37) & 0xff);
        g.writeUInt32LE(i, (i * 97) % 65532);
        return g;
      });
      const deflated = await Promise.all(
        Array.from({ length: 20 }, (_, b) => pool.run('deflate', grains.slice(b * 10, b * 10 + 10), { level: 1 })),
      );
      // Batches of uneven sizes, all in flight at once, so spare inputs are taken and given back out of order.
      const flat = deflated.flat().map((r) => r.data!);
      const sizes = [1, 16, 3, 16, 7, 16, 16, 2, 16, 16, 16, 16, 16, 16, 16, 11];
      let at = 0;
      const batches: Promise<{ from: number; out: Awaited<ReturnType<ZlibPool['run']>> }>[] = [];
      for (const n of sizes) {
        const from = at;
        batches.push(
          pool.run('inflate', flat.slice(from, from + n), { maxOutputLength: 65536 }).then((out) => ({ from, out })),
        );
        at += n;
      }
      expect(at).toBe(grains.length);
      for (const { from, out } of await Promise.all(batches)) {
        out.forEach((r, i) => expect(r.data!.equals(grains[from + i]!)).toBe(true));
      }
    } finally {
      await pool.close();
    }
  });
});
