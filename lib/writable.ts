/**
 * Backpressure on a writable we write to by hand: after write() returned
 * false, wait until it wants more ('drain') or is gone ('close' or 'error').
 * The callers check the stream's state and their own recorded failure right
 * after, so a gone stream needs no error of its own here; the wait never
 * rejects and leaves no listener behind.
 */
import { once, type EventEmitter } from 'node:events';

export async function drainedOrGone(stream: EventEmitter & { destroyed?: boolean }): Promise<void> {
  if (stream.destroyed) return; // its 'close' may have been emitted already
  const ac = new AbortController();
  // once() rejects on 'error' (the stream is gone) and on abort (the other event came first).
  const settle = (event: string) =>
    once(stream, event, { signal: ac.signal }).then(
      () => undefined,
      () => undefined,
    );
  try {
    await Promise.race([settle('drain'), settle('close')]);
  } finally {
    ac.abort();
  }
}
