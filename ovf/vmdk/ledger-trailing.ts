/**
 * The ledger of a VMDK whose metadata trails its grains (header gdOffset =
 * GD_AT_END, as VMware, VirtualBox and our writer stream them):
 *
 *   grains of table t · GT marker + table t · grains of table t' · … ·
 *   GD marker + grain directory · footer marker + footer · end-of-stream
 *
 * Checked exactly, with memory bounded by one grain table: the grains since
 * the last table must all belong to one table (they are strictly ascending,
 * so that is the next table), and when it comes, every entry must name the
 * sector where that grain's marker was, and no more. A table with no grain
 * before it must be empty (some writers emit one for every span). The grain
 * directory must point every table at the sector where it came, the footer
 * at the directory, and the stream must end with its end-of-stream marker.
 */
import type { GrainLedger, LedgerGeometry, StreamEnd } from './ledger.js';
import { entryAt, lbaOf } from './ledger.js';
import { badVmdk, truncatedVmdk } from './vmdk-errors.js';

export class TrailingLedger implements GrainLedger {
  /** Sector of each grain of `pendingTable` seen since the last grain table (0: none). */
  private readonly pending: Uint32Array;
  private pendingTable = -1;
  private pendingCount = 0;
  /** Grain table number → sector where its table came. */
  private readonly tableAt = new Map<number, number>();
  /** Sectors of the all-zero tables seen (they belong to no grain). */
  private readonly emptyTables = new Set<number>();
  private tables = 0;
  private gdSector = -1;
  private footerSeen = false;

  /** `gdSector`: where the header says the directory is, when it says (not GD_AT_END). */
  constructor(
    private readonly geo: LedgerGeometry,
    private readonly headerGdSector: number | null = null,
  ) {
    this.pending = new Uint32Array(geo.gtEntries);
  }

  grain(g: number, sector: number, at: number): void {
    if (this.gdSector >= 0)
      throw badVmdk(`VMDK grain marker at byte ${at}: a grain after the grain directory at sector ${this.gdSector}`);
    const t = Math.floor(g / this.geo.gtEntries);
    if (t !== this.pendingTable) {
      if (this.pendingCount > 0) {
        throw badVmdk(
          `VMDK grain marker at byte ${at}: the grain at LBA ${lbaOf(g, this.geo)} belongs to grain table ${t}, but grain table ${this.pendingTable} for the grains before it has not come`,
        );
      }
      if (this.tableAt.has(t))
        throw badVmdk(`VMDK grain marker at byte ${at}: a grain of grain table ${t}, which came already`);
      this.pendingTable = t;
    }
    this.pending[g - t * this.geo.gtEntries] = sector;
    this.pendingCount++;
  }

  gt(table: Buffer, sector: number, at: number): void {
    const geo = this.geo;
    if (this.gdSector >= 0)
      throw badVmdk(`VMDK grain table marker at byte ${at}: a grain table after the grain directory`);
    if (++this.tables > geo.numGTs)
      throw badVmdk(`VMDK grain table marker at byte ${at}: more grain tables than the ${geo.numGTs} the disk has`);
    if (this.pendingCount === 0) {
      for (let i = 0; i < geo.gtEntries; i++) {
        const e = entryAt(table, i, geo);
        if (e !== 0)
          throw badVmdk(
            `VMDK grain table at byte ${at} lists a grain at sector ${e} (entry ${i}) that the stream did not carry before it`,
          );
      }
      this.emptyTables.add(sector);
      return;
    }
    const t = this.pendingTable;
    for (let i = 0; i < geo.gtEntries; i++) {
      const e = entryAt(table, i, geo);
      const p = this.pending[i]!;
      if (e === p) continue;
      const lba = lbaOf(t * geo.gtEntries + i, geo);
      if (e === 0)
        throw badVmdk(
          `VMDK grain table at byte ${at} leaves out the grain at LBA ${lba}, which came at byte ${p * 512}`,
        );
      if (p === 0)
        throw badVmdk(
          `VMDK grain table at byte ${at} lists a grain at LBA ${lba} (sector ${e}) that the stream did not carry`,
        );
      throw badVmdk(
        `VMDK grain table at byte ${at} puts the grain at LBA ${lba} at byte ${e * 512}, but it came at byte ${p * 512}`,
      );
    }
    this.tableAt.set(t, sector);
    this.pending.fill(0);
    this.pendingCount = 0;
    this.pendingTable = -1;
  }

  gd(table: Buffer, sector: number, at: number): void {
    const geo = this.geo;
    if (this.gdSector >= 0) throw badVmdk(`VMDK grain directory marker at byte ${at}: a second grain directory`);
    if (this.pendingCount > 0) {
      throw badVmdk(
        `VMDK grain directory at byte ${at} comes before grain table ${this.pendingTable}, which the grains before it need`,
      );
    }
    if (this.headerGdSector !== null && this.headerGdSector !== sector)
      throw badVmdk(`VMDK grain directory at byte ${at}: the header puts it at sector ${this.headerGdSector}`);
    for (let t = 0; t < geo.numGTs; t++) {
      const e = table.readUInt32LE(t * 4);
      const want = this.tableAt.get(t) ?? 0;
      if (e === want || (want === 0 && this.emptyTables.has(e))) continue;
      if (want === 0)
        throw badVmdk(
          `VMDK grain directory at byte ${at}: entry ${t} points at sector ${e}, where the stream carried no grain table`,
        );
      throw badVmdk(
        `VMDK grain directory at byte ${at}: entry ${t} points at sector ${e}, but grain table ${t} came at sector ${want}`,
      );
    }
    this.gdSector = sector;
  }

  footer(gdOffset: bigint, at: number): void {
    if (this.footerSeen) throw badVmdk(`VMDK footer at byte ${at}: a second footer`);
    if (this.gdSector < 0) throw badVmdk(`VMDK footer at byte ${at} comes before the grain directory`);
    if (gdOffset !== BigInt(this.gdSector)) {
      throw badVmdk(
        `VMDK footer at byte ${at} puts the grain directory at sector ${gdOffset}, but it came at sector ${this.gdSector}`,
      );
    }
    this.footerSeen = true;
  }

  finish(end: StreamEnd): void {
    const missing =
      this.gdSector < 0
        ? this.pendingCount > 0
          ? `grain table ${this.pendingTable}`
          : 'its grain directory'
        : !this.footerSeen
          ? 'its footer'
          : null;
    if (end.kind === 'eof') {
      if (missing) throw truncatedVmdk(`VMDK stream ends at byte ${end.at} before ${missing}`);
      throw truncatedVmdk(`VMDK stream ends at byte ${end.at} without an end-of-stream marker`);
    }
    if (missing) throw badVmdk(`VMDK end-of-stream marker at byte ${end.at} comes before ${missing}`);
  }
}
