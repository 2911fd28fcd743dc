import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { drainedOrGone } from '../../lib/writable.js';

/** A writable that holds each write until `release()` is called. */
function slowWritable() {
  let pending: (() => void)[] = [];
  const w = new Writable({
    highWaterMark: 4,
    write(_chunk, _enc, cb) {
      pending.push(cb);
    },
  });
  const release = () => {
    const p = pending;
    pending = [];
    for (const cb of p) cb();
  };
  return { w, release };
}

const listeners = (w: Writable) => ['drain', 'close', 'error'].map((e) => w.listenerCount(e));

describe('drainedOrGone', () => {
  it('waits for drain, and leaves no listener behind', async () => {
    const { w, release } = slowWritable();
    w.on('error', () => undefined);
    const before = listeners(w);
    expect(w.write(Buffer.alloc(16))).toBe(false);
    let done = false;
    const waiting = drainedOrGone(w).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBe(false);
    release();
    await waiting;
    expect(done).toBe(true);
    expect(listeners(w)).toEqual(before);
  });

  it('returns when the stream closes or fails instead, without rejecting', async () => {
    const a = slowWritable();
    a.w.write(Buffer.alloc(16));
    const closing = drainedOrGone(a.w);
    a.w.destroy();
    await expect(closing).resolves.toBeUndefined();

    const b = slowWritable();
    b.w.on('error', () => undefined);
    b.w.write(Buffer.alloc(16));
    const failing = drainedOrGone(b.w);
    b.w.destroy(new Error('gone'));
    await expect(failing).resolves.toBeUndefined();

    // Already destroyed: its close may be long past, so no wait at all.
    await expect(drainedOrGone(a.w)).resolves.toBeUndefined();
  });
});
