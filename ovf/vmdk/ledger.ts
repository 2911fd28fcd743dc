/**
 * GrainLedger: how the reader proves a streamOptimized VMDK whole. The grain
 * markers alone say what to decode, but not that nothing is missing: a file
 * cut after any grain is still a valid-looking stream of grains. The grain
 * tables are the writer's own list of its grains, so the reader holds every
 * grain marker against them, and a stream is whole only when the two agree
 * exactly (the same grains, at the same places) and the stream carried every
 * piece of metadata its layout promises.
 *
 * Two layouts, two ledgers (docs/design-vmdk.md, "Proven whole"):
 *  - metadata at the end (header gdOffset = GD_AT_END; VMware, VirtualBox,
 *    ours): each grain table follows its grains; then the grain directory,
 *    the footer and the end-of-stream marker (ledger-trailing.ts);
 *  - metadata up front (qemu-img): the grain directory and every grain table
 *    inside `overHead`, before the first grain (ledger-up-front.ts).
 *
 * The reader calls, in stream order: grain() per grain marker (O(1)), gt()
 * and gd() with each table's bytes, footer(); then finish() once every grain
 * was decoded, so a grain that fails to inflate is reported before a table
 * disagreement that its rewriting caused.
 */

export interface LedgerGeometry {
  grainSectors: number;
  /** numGTEsPerGT: grains per grain table. */
  gtEntries: number;
  /** Grain tables a disk of this capacity has (entries of the grain directory). */
  numGTs: number;
  gtSectors: number;
  gdSectors: number;
  /** FLAG_ZERO_GRAIN: a table entry of 1 means "reads as zeros", not a sector. */
  zeroGrainEntries: boolean;
  /** First sector after the header's metadata area (overHead): where grains may start. */
  grainsSector: number;
}

/** How the marker stream ended: an end-of-stream marker at `at`, or the input ran out at `at`. */
export interface StreamEnd {
  kind: 'eos' | 'eof';
  at: number;
}

export interface GrainLedger {
  /** A grain marker for grain number `g` at file sector `sector` (byte `at`). */
  grain(g: number, sector: number, at: number): void;
  /** A grain table's bytes; it starts at file sector `sector`, byte `at`. */
  gt(table: Buffer, sector: number, at: number): void;
  /** The grain directory's bytes; it starts at file sector `sector`, byte `at`. */
  gd(table: Buffer, sector: number, at: number): void;
  /** A footer (validated against the header already) whose gdOffset is `gdOffset`. */
  footer(gdOffset: bigint, at: number): void;
  /** The final proof; throws BAD_VMDK or TRUNCATED when the stream is not whole. */
  finish(end: StreamEnd): void;
}

/** A table entry as a sector (0: no grain), with FLAG_ZERO_GRAIN's 1 read as no grain. */
export function entryAt(table: Buffer, i: number, geo: LedgerGeometry): number {
  const e = table.readUInt32LE(i * 4);
  return e === 1 && geo.zeroGrainEntries ? 0 : e;
}

/** LBA (in sectors) of grain number `g`, for messages. */
export function lbaOf(g: number, geo: LedgerGeometry): number {
  return g * geo.grainSectors;
}
