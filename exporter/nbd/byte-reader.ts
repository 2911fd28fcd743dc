/**
 * ByteReader: exact-length reads over a socket's data events, for the
 * handshake, where messages are small and the exchange is strictly
 * request/response. Transmission uses ReplyParser instead.
 */
import { P2vError } from '../../lib/errors.js';

export class ByteReader {
  private bufs: Buffer[] = [];
  private have = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  push(chunk: Buffer): void {
    this.bufs.push(chunk);
    this.have += chunk.length;
    this.wake();
  }

  /** The connection ended or failed: pending and later reads reject with `e`. */
  fail(e: Error): void {
    this.failure ??= e;
    this.wake();
  }

  /** Exactly `n` bytes, once they have arrived. */
  read(n: number): Promise<Buffer> {
    if (this.waiter) throw new Error('ByteReader: concurrent read');
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.wake();
    });
  }

  /** Bytes received beyond the last read (handed over to the reply parser). */
  takeRest(): Buffer[] {
    const rest = this.bufs;
    this.bufs = [];
    this.have = 0;
    return rest;
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.have >= w.n) {
      this.waiter = undefined;
      w.resolve(this.take(w.n));
    } else if (this.failure) {
      this.waiter = undefined;
      w.reject(this.failure);
    }
  }

  private take(n: number): Buffer {
    const first = this.bufs[0];
    if (first && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.bufs.shift();
      else this.bufs[0] = first.subarray(n);
      this.have -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const b = this.bufs[0]!;
      const k = Math.min(b.length, n - at);
      b.copy(out, at, 0, k);
      at += k;
      if (k === b.length) this.bufs.shift();
      else this.bufs[0] = b.subarray(k);
    }
    this.have -= n;
    return out;
  }
}

export function connectionClosed(during: string): P2vError {
  return new P2vError('NBD', `NBD server closed the connection during ${during}`, {
    hint: 'check that nbdkit is still running and look at its messages',
  });
}
