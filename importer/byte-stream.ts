/**
 * Small helpers over AsyncIterable<Buffer>, the shape file contents arrive in
 * from the OVA reader: look at the head without losing it, and inflate
 * ovf:compression="gzip" files with a ceiling on what they may inflate to.
 */
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { P2vError } from '../lib/errors.js';

export type ByteSource = AsyncIterable<Buffer>;

/** Read at least `n` bytes (fewer only at the end) and give back a source that starts again at byte 0. */
export async function peekHead(src: ByteSource, n: number): Promise<{ head: Buffer; source: ByteSource }> {
  const it = src[Symbol.asyncIterator]();
  const parts: Buffer[] = [];
  let got = 0;
  let ended = false;
  while (got < n) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    parts.push(r.value);
    got += r.value.length;
  }
  const head = Buffer.concat(parts);
  async function* rest(): ByteSource {
    if (head.length) yield head;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { head: head.subarray(0, Math.min(n, head.length)), source: rest() };
}

export function isGzip(head: Buffer): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/** Inflate a gzip stream, refusing to produce more than `maxBytes`. */
export async function* gunzip(src: ByteSource, maxBytes: number, what: string): ByteSource {
  const gz = createGunzip();
  const feeder = Readable.from(src, { objectMode: false });
  feeder.on('error', (e) => gz.destroy(e));
  feeder.pipe(gz);
  let total = 0;
  try {
    for await (const chunk of gz as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > maxBytes) {
        throw new P2vError('BAD_OVA', `${what} inflates beyond ${maxBytes} bytes`, {
          hint: 'the compressed file is corrupt or hostile',
        });
      }
      yield chunk;
    }
  } catch (e) {
    if (e instanceof P2vError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (code.startsWith('Z_')) {
      throw new P2vError(
        code === 'Z_BUF_ERROR' ? 'TRUNCATED' : 'BAD_OVA',
        `${what}: gzip data is ${code === 'Z_BUF_ERROR' ? 'truncated' : 'corrupt'}`,
        {
          hint: 'send the file again',
          cause: e,
        },
      );
    }
    throw e;
  } finally {
    feeder.destroy();
    gz.destroy();
  }
}
