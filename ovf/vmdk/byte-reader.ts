/**
 * ByteReader: exact-length reads from an AsyncIterable<Buffer> of any
 * chunking, never seeking. It keeps only the bytes not yet consumed (at most
 * one input chunk plus the current request), tracks the absolute position for
 * error messages, and turns an early end into P2vError('TRUNCATED').
 */
import { P2vError } from '../../lib/errors.js';

export class ByteReader {
  private readonly it: AsyncIterator<Buffer>;
  private readonly queue: Buffer[] = [];
  private buffered = 0;
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
    while (this.buffered < n) {
      if (this.ended) return false;
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        return false;
      }
      if (r.value.length === 0) continue;
      this.queue.push(r.value);
      this.buffered += r.value.length;
    }
    return true;
  }

  private truncated(n: number, what: string): P2vError {
    return new P2vError(
      'TRUNCATED',
      `${this.label} ends at byte ${this.position + this.buffered} inside ${what} (${n} bytes from byte ${this.position})`,
      { hint: 'the transfer was cut short; send the image again' },
    );
  }

  /** Exactly `n` bytes (a view into the input when they sit in one chunk). */
  async read(n: number, what: string): Promise<Buffer> {
    if (n === 0) return Buffer.alloc(0);
    if (!(await this.fill(n))) throw this.truncated(n, what);
    const first = this.queue[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.queue.shift();
      else this.queue[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const b = this.queue[0]!;
        const take = Math.min(b.length, n - got);
        b.copy(out, got, 0, take);
        got += take;
        if (take === b.length) this.queue.shift();
        else this.queue[0] = b.subarray(take);
      }
    }
    this.buffered -= n;
    this.position += n;
    return out;
  }

  /** Discard `n` bytes without holding them. */
  async skip(n: number, what: string): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill(1))) throw this.truncated(left, what);
      const b = this.queue[0]!;
      const take = Math.min(b.length, left);
      if (take === b.length) this.queue.shift();
      else this.queue[0] = b.subarray(take);
      this.buffered -= take;
      this.position += take;
      left -= take;
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
      const b = this.queue.shift()!;
      this.buffered -= b.length;
      const i = firstNonZero(b);
      if (i >= 0) found = this.position + i;
      this.position += b.length;
    }
    return found;
  }

  /** Stop reading the input early (lets a generator upstream clean up). */
  async close(): Promise<void> {
    this.queue.length = 0;
    this.buffered = 0;
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
