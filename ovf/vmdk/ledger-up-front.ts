/**
 * The ledger of a VMDK whose grain directory and grain tables come up front,
 * inside the header's `overHead` before the first grain (qemu-img's
 * streamOptimized files: header gdOffset is a real sector; the redundant
 * directory and tables come first and are skipped; qemu ends the file after
 * its last grain, without an end-of-stream marker).
 *
 * readUpFrontLedger reads the directory and then each table in file order,
 * never seeking back, and records the grains they list: one bit per grain in
 * a bitmap per grain table that lists any (so memory follows the tables the
 * stream really carries: 64 bytes per 512 grains), plus an order-free
 * fingerprint of every (grain, sector) pair. Each grain marker must then be a
 * listed grain (its bit is cleared) and at the end no bit may be left and the
 * fingerprints of listed and seen pairs must agree: the same grains, at the
 * same sectors. Per grain: one map lookup (cached per table) and a few
 * integer operations.
 */
import type { StreamReader } from './stream-reader.js';
import type { GrainLedger, LedgerGeometry, StreamEnd } from './ledger.js';
import { entryAt, lbaOf } from './ledger.js';
import { badVmdk, truncatedVmdk } from './vmdk-errors.js';

const SECTOR = 512;

/** A 32-bit mix of one (grain, sector) pair; summed, it fingerprints a set of pairs in any order. */
function pairHash(g: number, sector: number): number {
  let h = Math.imul((g >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul((sector + Math.floor(g / 2 ** 32)) | 0, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x27d4eb2d);
  return (h ^ (h >>> 15)) >>> 0;
}

export class UpFrontLedger implements GrainLedger {
  /** Grain table number → one bit per entry, set while the listed grain has not come. */
  private readonly unseen = new Map<number, Uint32Array>();
  private listed = 0;
  private listedPrint = 0;
  private seen = 0;
  private seenPrint = 0;
  private lastTable = -1;
  private lastBits: Uint32Array | undefined;

  constructor(private readonly geo: LedgerGeometry) {}

  /** Record one table's entries (table number `t`) as listed grains. */
  list(t: number, table: Buffer, at: number): void {
    const geo = this.geo;
    let bits: Uint32Array | undefined;
    for (let i = 0; i < geo.gtEntries; i++) {
      const e = entryAt(table, i, geo);
      if (e === 0) continue;
      if (e < geo.grainsSector)
        throw badVmdk(`VMDK grain table at byte ${at}: entry ${i} points at sector ${e}, inside the metadata area`);
      bits ??= new Uint32Array(Math.ceil(geo.gtEntries / 32));
      bits[i >>> 5]! |= 1 << (i & 31);
      this.listed++;
      this.listedPrint = (this.listedPrint + pairHash(t * geo.gtEntries + i, e)) >>> 0;
    }
    if (bits) this.unseen.set(t, bits);
  }

  grain(g: number, sector: number, at: number): void {
    const t = Math.floor(g / this.geo.gtEntries);
    if (t !== this.lastTable) {
      this.lastTable = t;
      this.lastBits = this.unseen.get(t);
    }
    const i = g - t * this.geo.gtEntries;
    const bits = this.lastBits;
    if (!bits || !(bits[i >>> 5]! & (1 << (i & 31))))
      throw badVmdk(
        `VMDK grain marker at byte ${at}: the grain at LBA ${lbaOf(g, this.geo)} is not in the grain tables`,
      );
    bits[i >>> 5]! &= ~(1 << (i & 31));
    this.seen++;
    this.seenPrint = (this.seenPrint + pairHash(g, sector)) >>> 0;
  }

  /** Trailing tables (not written by qemu) add nothing to the proof: the tables up front are the list. */
  gt(): void {}
  gd(): void {}
  footer(): void {}

  finish(end: StreamEnd): void {
    if (this.seen < this.listed) {
      const lba = lbaOf(this.firstUnseen(), this.geo);
      const counts = `${this.seen} of ${this.listed} grains came`;
      if (end.kind === 'eof')
        throw truncatedVmdk(
          `VMDK stream ends at byte ${end.at} before the grain at LBA ${lba} that its grain table lists (${counts})`,
        );
      throw badVmdk(
        `VMDK end-of-stream marker at byte ${end.at} comes before the grain at LBA ${lba} that its grain table lists (${counts})`,
      );
    }
    if (this.seenPrint !== this.listedPrint)
      throw badVmdk('VMDK grain tables place the grains at other sectors than the stream carried them');
  }

  private firstUnseen(): number {
    let best = Infinity;
    for (const [t, bits] of this.unseen) {
      const w = bits.findIndex((x) => x !== 0);
      // 31 - clz32(x & -x): the index of x's lowest set bit.
      if (w >= 0) best = Math.min(best, t * this.geo.gtEntries + w * 32 + 31 - Math.clz32(bits[w]! & -bits[w]!));
    }
    return best;
  }
}

/**
 * Read the grain directory at `gdSector` and the tables it names, all before
 * `geo.grainsSector`, from a reader positioned inside the metadata area; on
 * return the reader stands at the first grain.
 */
export async function readUpFrontLedger(
  r: StreamReader,
  geo: LedgerGeometry,
  gdSector: number,
): Promise<UpFrontLedger> {
  const end = geo.grainsSector * SECTOR;
  const gdAt = gdSector * SECTOR;
  if (gdAt < r.position || gdAt + geo.gdSectors * SECTOR > end) {
    throw badVmdk(
      `VMDK header: grain directory at sector ${gdSector} is not in the metadata area between sectors ${r.position / SECTOR} and ${geo.grainsSector}`,
    );
  }
  await r.skip(gdAt - r.position, 'the VMDK metadata before the grain directory');
  const gd = await r.read(geo.gdSectors * SECTOR, 'the VMDK grain directory');
  const tables: [sector: number, t: number][] = [];
  for (let t = 0; t < geo.numGTs; t++) {
    const s = gd.readUInt32LE(t * 4);
    if (s !== 0) tables.push([s, t]);
  }
  tables.sort((a, b) => a[0] - b[0]);
  const ledger = new UpFrontLedger(geo);
  for (const [s, t] of tables) {
    const at = s * SECTOR;
    if (at < r.position || at + geo.gtSectors * SECTOR > end) {
      throw badVmdk(
        `VMDK grain directory at byte ${gdAt}: grain table ${t} at sector ${s} overlaps another table or lies outside the metadata area before the grains`,
      );
    }
    await r.skip(at - r.position, 'the VMDK metadata between grain tables');
    ledger.list(t, await r.read(geo.gtSectors * SECTOR, `VMDK grain table ${t}`), at);
  }
  await r.skip(end - r.position, 'the VMDK metadata before the first grain');
  return ledger;
}
