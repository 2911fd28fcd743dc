/**
 * Exact-length reads over a stream of buffers, for the block map and delta
 * parsers: only the bytes asked for are held, never the whole stream.
 */
import { P2vError } from '../../lib/errors.js';

export class ByteReader {
  private readonly it: AsyncIterator<Buffer>;
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  /** Bytes handed out so far. */
  consumed = 0;

  constructor(
    source: AsyncIterable<Buffer>,
    private readonly what: string,
  ) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buf.length < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.buf = this.buf.length === 0 ? r.value : Buffer.concat([this.buf, r.value]);
    }
    return this.buf.length >= n;
  }

  /** Exactly n bytes, or a TRUNCATED error. */
  async read(n: number): Promise<Buffer> {
    if (!(await this.fill(n)))
      throw new P2vError('TRUNCATED', `${this.what} ends early (after ${this.consumed + this.buf.length} bytes)`, {
        hint: 'it was cut short in transit: send it again',
      });
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.consumed += n;
    return out;
  }

  /** A line ending in \n of at most `max` bytes (without the \n). */
  async line(max: number): Promise<string> {
    for (;;) {
      const at = this.buf.indexOf(0x0a);
      if (at >= 0 && at <= max) {
        const text = this.buf.subarray(0, at).toString('utf8');
        this.buf = this.buf.subarray(at + 1);
        this.consumed += at + 1;
        return text;
      }
      if (this.buf.length > max)
        throw new P2vError('BAD_OVA', `${this.what} does not start with its header line`, {
          hint: 'it is not a p2v block map or delta, or it was damaged: fetch or send it again',
        });
      if (!(await this.fill(this.buf.length + 1)))
        throw new P2vError('TRUNCATED', `${this.what} ends early (in its header)`, {
          hint: 'it was cut short in transit: send it again',
        });
    }
  }

  /** What is buffered, at least `min` bytes unless the stream ends first (then maybe fewer, or none). */
  async peek(min: number): Promise<Buffer> {
    await this.fill(min);
    return this.buf;
  }

  /** Drop `n` bytes of what peek returned. */
  consume(n: number): void {
    this.buf = this.buf.subarray(n);
    this.consumed += n;
  }

  /** True when nothing is left. */
  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }
}
