/**
 * TarTail: watches the bytes fed to the tar parser to tell a complete archive
 * from one cut exactly at a member boundary. tar-stream reports input that
 * ends inside a header or a member, but not input that ends cleanly between
 * two members; only the end-of-archive marker (two zero blocks after the last
 * member) says nothing is missing, e.g. the manifest at the end of a stream.
 *
 *   tail.update(buf)              for every byte the parser gets, in order
 *   tail.hasEndMarker(dataEnd)    true when ≥ 1024 zero bytes follow offset `dataEnd`
 */
import { TAR_BLOCK } from './tar-header.js';

const ZERO_BLOCK = Buffer.alloc(TAR_BLOCK);

export class TarTail {
  /** Bytes seen. */
  total = 0;
  /** Offset just after the last non-zero byte seen. */
  private lastNonZeroEnd = 0;

  update(buf: Buffer): void {
    const end = lastNonZeroEnd(buf);
    if (end > 0) this.lastNonZeroEnd = this.total + end;
    this.total += buf.length;
  }

  /** `dataEnd`: offset where the last member's data and padding end (0 for an empty archive). */
  hasEndMarker(dataEnd: number): boolean {
    return this.lastNonZeroEnd <= dataEnd && this.total - dataEnd >= 2 * TAR_BLOCK;
  }
}

/** Index after the last non-zero byte of `buf`, 0 when it is all zeros; compares whole blocks first so zero runs cost a memcmp. */
export function lastNonZeroEnd(buf: Buffer): number {
  let i = buf.length;
  while (i > 0) {
    const start = Math.max(0, i - TAR_BLOCK);
    if (!buf.subarray(start, i).equals(ZERO_BLOCK.subarray(0, i - start))) {
      for (let j = i - 1; j >= start; j--) if (buf[j] !== 0) return j + 1;
    }
    i = start;
  }
  return 0;
}
