/**
 * StreamReader: exact-length reads from an AsyncIterable<Buffer> of any
 * chunking, never seeking. It keeps only the bytes not yet consumed (at most
 * one input chunk plus the current request), tracks the absolute position for
 * error messages, and turns an early end into P2vError('TRUNCATED').
 *
 * Not the NBD handshake reader (exporter/nbd/handshake-reader.ts), though
 * both hand out exact lengths from a lib/chunk-queue.ts: this one pulls its
 * input when a read needs it, counts positions, skips and scans for zeros;
 * that one is pushed socket data and fails with the connection's error.
 */
import { P2vError } from '../../lib/errors.js';
import { ChunkQueue } from '../../lib/chunk-queue.js';

export class StreamReader {
  private readonly it: AsyncIterator<Buffer>;
  private readonly queue = new ChunkQueue();
  private ended = false;
  /** Absolute offset of the next byte `read` returns. */
  position = 0;

  constructor(
    input: AsyncIterable<Buffer>,
    private readonly label = 'VMDK stream',
  ) {
    this.it = input[Symbol.asyncIterator]();
  }

  /** Pull input until `n` bytes are buffered; false if the input ends first. */
  private async fill(n: number): Promise<boolean> {
    while (this.queue.length < n) {
      if (this.ended) return false;
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        return false;
      }
      this.queue.push(r.value);
    }
    return true;
  }

  private truncated(n: number, what: string): P2vError {
    return new P2vError(
      'TRUNCATED',
      `${this.label} ends at byte ${this.position + this.queue.length} inside ${what} (${n} bytes from byte ${this.position})`,
      { hint: 'the transfer was cut short; send the image again' },
    );
  }

  /** Exactly `n` bytes (a view into the input when they sit in one chunk). */
  async read(n: number, what: string): Promise<Buffer> {
    if (n === 0) return Buffer.alloc(0);
    if (this.queue.length < n && !(await this.fill(n))) throw this.truncated(n, what);
    this.position += n;
    return this.queue.take(n);
  }

  /** Discard `n` bytes without holding them. */
  async skip(n: number, what: string): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.queue.length === 0 && !(await this.fill(1))) throw this.truncated(left, what);
      const k = this.queue.drop(left);
      this.position += k;
      left -= k;
    }
  }

  /** True when no byte is left. */
  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }

  /** Consume the rest; return the absolute offset of its first non-zero byte, or -1. */
  async drainExpectingZeros(): Promise<number> {
    let found = -1;
    while (found < 0 && (await this.fill(1))) {
      for (const b of this.queue.takeAll()) {
        const i = found < 0 ? firstNonZero(b) : -1;
        if (i >= 0) found = this.position + i;
        this.position += b.length;
      }
    }
    return found;
  }

  /** Stop reading the input early (lets a generator upstream clean up). */
  async close(): Promise<void> {
    this.queue.takeAll();
    if (!this.ended) {
      this.ended = true;
      await this.it.return?.();
    }
  }
}

function firstNonZero(b: Buffer): number {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return i;
  return -1;
}
