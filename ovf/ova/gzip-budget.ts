/**
 * GzipBudget: how much a gzip-compressed OVA may make us inflate and parse
 * for each byte the sender paid for. Without it a 1 MB gzip of 1 GiB of
 * zeros cost seconds of CPU (gunzip, and tar-stream walking two million
 * empty header blocks) before "no descriptor" was said. Two caps, both
 * checked on every inflated chunk, so the refusal comes within one chunk of
 * the cap (a few MiB of output, milliseconds):
 *
 *  - ratio: bytes out ≤ MAX_RATIO × bytes in + ALLOWANCE. An OVA's disks are
 *    compressed already (streamOptimized VMDK, qcow2, ovf:compression), so
 *    an outer gzip wins little on them: a legitimate OVA stays far below
 *    100:1, deflate's ceiling is about 1030:1. The allowance covers headers,
 *    descriptor and manifest, which compress well, and small archives.
 *  - total: every inflated byte must belong to the tar structure the
 *    archive announced: bytes out ≤ end of the last member's data (its
 *    header states its size, checked against the descriptor before the
 *    first byte) + MAX_GAP for the headers in between, the end-of-archive
 *    marker and record padding. Runs of empty blocks are what that refuses.
 *
 * Both raise one BAD_OVA line; uncompressed input is not budgeted (the
 * sender pays for every byte it makes us parse).
 */
import { P2vError } from '../../lib/errors.js';

/** Bytes out per byte in, beyond the allowance. */
export const MAX_RATIO = 100;
/** Inflated bytes always allowed (headers, descriptor, manifest, small archives). */
export const ALLOWANCE = 16 * 1024 * 1024;
/**
 * Inflated bytes allowed past the end of the last member's data: its next
 * header, a PAX header (tar-stream takes up to 4 MiB), the end marker and
 * record padding, and the parser's lag behind our count (a chunk or two).
 */
export const MAX_GAP = 8 * 1024 * 1024;

const HINT =
  'an OVA is compressed inside (its disks); send it without the outer gzip (gunzip it first), or check where it came from';

export class GzipBudget {
  bytesIn = 0;
  bytesOut = 0;

  constructor(
    private readonly limits: { ratio: number; allowance: number; gap: number } = {
      ratio: MAX_RATIO,
      allowance: ALLOWANCE,
      gap: MAX_GAP,
    },
  ) {}

  /** The compressed input, counted as gunzip pulls it. */
  async *counted(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const b of input) {
      this.bytesIn += b.length;
      yield b;
    }
  }

  /** Count `n` inflated bytes; `dataEnd` is where the last announced member's data ends. Throws BAD_OVA. */
  spend(n: number, dataEnd: number): void {
    this.bytesOut += n;
    const { ratio, allowance, gap } = this.limits;
    if (this.bytesOut > ratio * this.bytesIn + allowance) {
      throw new P2vError(
        'BAD_OVA',
        `the gzip-compressed OVA expands more than ${ratio}:1 (${this.bytesIn} bytes gave ${this.bytesOut} so far)`,
        { hint: HINT },
      );
    }
    if (this.bytesOut - dataEnd > gap) {
      throw new P2vError(
        'BAD_OVA',
        `the gzip-compressed OVA holds ${this.bytesOut - dataEnd} bytes after byte ${dataEnd} that belong to no member`,
        { hint: HINT },
      );
    }
  }
}
