/**
 * ChunkQueue: bytes that arrived in chunks of any size, taken out again in
 * exact lengths. It is the one piece the exporter's NBD handshake reader
 * (pushed socket data) and the importer's VMDK stream reader (pulled from an
 * async iterable) share: both hold only what is not yet consumed, and hand
 * out a view into a chunk when the request sits inside one, copying only
 * when it straddles chunks. The callers check `length` before taking.
 */
export class ChunkQueue {
  private readonly chunks: Buffer[] = [];
  /** Bytes held. */
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Exactly `n` bytes (n ≤ length): a view when they sit in the first chunk, else a copy. */
  take(n: number): Buffer {
    if (n > this.length) throw new RangeError(`ChunkQueue: take ${n} of ${this.length}`);
    const first = this.chunks[0];
    let out: Buffer;
    if (first && first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const b = this.chunks[0]!;
        const k = Math.min(b.length, n - at);
        b.copy(out, at, 0, k);
        at += k;
        if (k === b.length) this.chunks.shift();
        else this.chunks[0] = b.subarray(k);
      }
    }
    this.length -= n;
    return out;
  }

  /** Drop up to `n` bytes without copying them; returns how many were dropped. */
  drop(n: number): number {
    let left = Math.min(n, this.length);
    const dropped = left;
    while (left > 0) {
      const b = this.chunks[0]!;
      const k = Math.min(b.length, left);
      if (k === b.length) this.chunks.shift();
      else this.chunks[0] = b.subarray(k);
      left -= k;
    }
    this.length -= dropped;
    return dropped;
  }

  /** Everything held, as it arrived, leaving the queue empty. */
  takeAll(): Buffer[] {
    const all = this.chunks.splice(0);
    this.length = 0;
    return all;
  }
}
