/**
 * Options of the descriptor codec. The model itself (MachineDescription and
 * friends) lives in ../types.ts and is shared by every folder.
 */

export interface BuildOptions {
  /** Write each OvfFile.chunkSize as ovf:chunkSize (the OVA carries href.000000000, href.000000001, …). */
  chunked?: boolean;
  /** ganeti-p2v's version, written in the ProductSection. */
  productVersion?: string;
}

export interface ParseOptions {
  /** Refuse descriptors larger than this many bytes (default 4 MiB). */
  maxBytes?: number;
}
