/**
 * sniff(input) → { first, all }: the input's first bytes (at least two, unless
 * it is shorter), to look for the gzip magic, and the whole input as Buffers,
 * those first bytes included. Strings (a stream with an encoding set) become
 * Buffers. Returning from `all` early returns the input's iterator too, which
 * destroys a Node stream.
 */

export async function sniff(
  input: AsyncIterable<Buffer | Uint8Array | string>,
): Promise<{ first: Buffer; all: AsyncIterable<Buffer> }> {
  const it = input[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let len = 0;
  let ended = false;
  while (len < 2) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    const b = asBuffer(r.value);
    head.push(b);
    len += b.length;
  }
  async function* all(): AsyncGenerator<Buffer> {
    try {
      yield* head;
      while (!ended) {
        const r = await it.next();
        if (r.done) ended = true;
        else yield asBuffer(r.value);
      }
    } finally {
      if (!ended) await it.return?.();
    }
  }
  return { first: Buffer.concat(head), all: all() };
}

function asBuffer(v: Buffer | Uint8Array | string): Buffer {
  if (typeof v === 'string') return Buffer.from(v);
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}
