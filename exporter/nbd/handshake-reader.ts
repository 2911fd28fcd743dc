/**
 * HandshakeReader: exact-length reads over a socket's pushed data events,
 * for the NBD handshake, where messages are small and the exchange is
 * strictly request/response. Transmission uses ReplyParser instead, which
 * takes over the bytes read beyond the handshake (`takeRest`).
 *
 * Not the VMDK stream reader (ovf/vmdk/stream-reader.ts), though both hand
 * out exact lengths from a lib/chunk-queue.ts: this one is fed by a socket
 * (push), has one pending read at a time and fails with the connection's
 * error; that one pulls from an async iterable, counts positions and skips.
 */
import { P2vError } from '../../lib/errors.js';
import { ChunkQueue } from '../../lib/chunk-queue.js';

export class HandshakeReader {
  private readonly queue = new ChunkQueue();
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  push(chunk: Buffer): void {
    this.queue.push(chunk);
    this.wake();
  }

  /** The connection ended or failed: pending and later reads reject with `e`. */
  fail(e: Error): void {
    this.failure ??= e;
    this.wake();
  }

  /** Exactly `n` bytes, once they have arrived. */
  read(n: number): Promise<Buffer> {
    if (this.waiter) throw new Error('HandshakeReader: concurrent read');
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.wake();
    });
  }

  /** Bytes received beyond the last read (handed over to the reply parser). */
  takeRest(): Buffer[] {
    return this.queue.takeAll();
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.queue.length >= w.n) {
      this.waiter = undefined;
      w.resolve(this.queue.take(w.n));
    } else if (this.failure) {
      this.waiter = undefined;
      w.reject(this.failure);
    }
  }
}

export function connectionClosed(during: string): P2vError {
  return new P2vError('NBD', `NBD server closed the connection during ${during}`, {
    hint: 'check that nbdkit is still running and look at its messages',
  });
}
