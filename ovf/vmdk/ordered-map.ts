/**
 * mapOrdered: run an async transform over a stream with up to `window` items
 * in flight and yield results in input order. The window is the memory bound
 * (window × item size) and the parallelism (zlib's async calls run on the
 * libuv threadpool). The source is pulled only when a slot is free, so a slow
 * consumer stops the source: backpressure end to end.
 */

export async function* mapOrdered<T, R>(
  source: AsyncIterable<T>,
  fn: (item: T) => Promise<R>,
  window: number,
): AsyncGenerator<R> {
  const size = Math.max(1, Math.floor(window));
  const it = source[Symbol.asyncIterator]();
  const inFlight: Promise<R>[] = [];
  let sourceDone = false;
  try {
    for (;;) {
      while (!sourceDone && inFlight.length < size) {
        const r = await it.next();
        if (r.done) {
          sourceDone = true;
          break;
        }
        const p = fn(r.value);
        // A later item may fail while we await an earlier one; we rethrow it in order, so keep it from counting as unhandled.
        p.catch(() => {});
        inFlight.push(p);
      }
      const head = inFlight.shift();
      if (head === undefined) return;
      yield await head;
    }
  } finally {
    if (!sourceDone) await it.return?.();
  }
}
