import { describe, expect, it } from 'vitest';
import { ChunkQueue } from '../../lib/chunk-queue.js';

const bytes = (from: number, n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (from + i) & 0xff));

describe('ChunkQueue', () => {
  it('takes exact lengths across chunk boundaries, a view within one chunk', () => {
    const q = new ChunkQueue();
    const a = bytes(0, 5);
    q.push(a);
    q.push(Buffer.alloc(0));
    q.push(bytes(5, 3));
    q.push(bytes(8, 10));
    expect(q.length).toBe(18);
    const first = q.take(2);
    expect(first).toEqual(bytes(0, 2));
    expect(first.buffer).toBe(a.buffer); // a view, not a copy
    expect(q.take(7)).toEqual(bytes(2, 7)); // straddles three chunks
    expect(q.length).toBe(9);
    expect(q.drop(4)).toBe(4);
    expect(q.take(1)).toEqual(bytes(13, 1));
    expect(q.takeAll().map((b) => [...b])).toEqual([[14, 15, 16, 17]]);
    expect(q.length).toBe(0);
    expect(q.take(0).length).toBe(0);
  });

  it('drops no more than it holds and refuses to take more', () => {
    const q = new ChunkQueue();
    q.push(bytes(0, 3));
    expect(q.drop(10)).toBe(3);
    expect(q.length).toBe(0);
    q.push(bytes(0, 2));
    expect(() => q.take(3)).toThrow(RangeError);
    expect(q.take(2)).toEqual(bytes(0, 2));
  });
});
