/**
 * The map of a delta's result, made from the base map's bytes (docs/design-delta.md):
 * the base's entries copied through as they are, in runs, except the blocks
 * a record names, whose new entry takes the base entry's place. Works on the
 * encoded bytes, never one object per block: a 2 GiB disk has 524 288
 * entries, and building and hashing them one by one cost more than applying
 * the delta (bench/README.md). The digest over the bytes written is the
 * result's disk digest (format.ts DiskDigest).
 */
import { P2vError } from '../../lib/errors.js';
import { ByteReader } from './byte-reader.js';
import { scanEntries } from './block-map.js';
import { blockCount, DIGEST_BYTES, DiskDigest, ENTRY_DATA, ENTRY_ZERO, type BlockEntry } from './format.js';

const HINT_BASE = 'the base map is damaged: drop the base (p2v-import --remove NAME) and send a full export';

export interface ResultMapGeometry {
  capacity: number;
  blockSize: number;
}

export class ResultMap {
  private readonly r: ByteReader;
  private readonly digest: DiskDigest;
  private readonly count: number;
  /** The next block whose entry is not yet written. */
  private next = 0;

  /**
   * `base`: exactly the base disk's encoded entries (a map file's bytes);
   * `out` receives the result's entry bytes in order, valid during the call
   * only (copy them to keep them).
   */
  constructor(
    base: AsyncIterable<Buffer>,
    g: ResultMapGeometry,
    private readonly out: (bytes: Buffer) => void | Promise<void>,
  ) {
    this.r = new ByteReader(base, 'the base map');
    this.digest = new DiskDigest(g.blockSize, g.capacity);
    this.count = blockCount(g.capacity, g.blockSize);
  }

  private bad(message: string): P2vError {
    return new P2vError('BAD_OVA', `the base map ${message}`, { hint: HINT_BASE });
  }

  private async emit(b: Buffer): Promise<void> {
    this.digest.addBytes(b);
    await this.out(b);
  }

  /** Copy the base's entries through up to block `end` (exclusive). */
  private async copyTo(end: number): Promise<void> {
    while (this.next < end) {
      const buf = await this.r.peek(1 + DIGEST_BYTES);
      const [n, used] = scanEntries(buf, end - this.next, (t) => this.bad(`has an unknown entry type ${t}`));
      if (n === 0) throw this.bad('has fewer blocks than the disk');
      await this.emit(buf.subarray(0, used));
      this.r.consume(used);
      this.next += n;
    }
  }

  /** Block `index` (ascending, each at most once) is `e` in the result. */
  async set(index: number, e: BlockEntry): Promise<void> {
    if (index < this.next || index >= this.count) throw new RangeError(`block ${index} out of order or past the disk`);
    await this.copyTo(index);
    const tag = (await this.r.peek(1))[0];
    if (tag === ENTRY_ZERO) this.r.consume(1);
    else if (tag === ENTRY_DATA) await this.r.read(1 + DIGEST_BYTES);
    else throw this.bad(tag === undefined ? 'has fewer blocks than the disk' : `has an unknown entry type ${tag}`);
    this.next = index + 1;
    if (e === null) await this.emit(Buffer.of(ENTRY_ZERO));
    else {
      const b = Buffer.alloc(1 + DIGEST_BYTES);
      b[0] = ENTRY_DATA;
      e.copy(b, 1);
      await this.emit(b);
    }
  }

  /** The rest of the base's entries; returns the result's disk digest. */
  async finish(): Promise<string> {
    await this.copyTo(this.count);
    if (!(await this.r.atEnd())) throw this.bad('has more blocks than the disk');
    return this.digest.hex();
  }
}
