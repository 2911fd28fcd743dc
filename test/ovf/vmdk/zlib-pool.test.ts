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
