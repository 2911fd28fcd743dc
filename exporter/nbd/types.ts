/**
 * The NBD client's public data types. An NbdClient speaks the fixed newstyle
 * NBD protocol (handshake, structured replies, base:allocation block status)
 * to one export; everything here is plain data.
 */

/** Where the NBD server listens: a Unix socket (nbdkit --unix) or TCP. */
export type NbdTarget = { socket: string } | { host: string; port: number };

export interface NbdConnectOptions {
  /** Export to open (default ""; nbdkit serves its one export under any name). */
  exportName?: string;
  /** Requests on the wire at once; further requests wait their turn (default 16). */
  maxInFlight?: number;
  /** Give up the handshake after this long (default 30 s). */
  handshakeTimeoutMs?: number;
}

/**
 * One run of the export with the same base:allocation state. `hole`: the
 * server stores nothing there; `zero`: it reads as zeros. A hole that is not
 * also zero must still be read.
 */
export interface NbdExtent {
  offset: number;
  length: number;
  hole: boolean;
  zero: boolean;
}

/** NBD_INFO_BLOCK_SIZE: the server's block size constraints, in bytes. */
export interface NbdBlockSizes {
  min: number;
  preferred: number;
  max: number;
}

/** What the handshake learnt about the export. */
export interface NbdExportInfo {
  size: number;
  /** Transmission flags (NBD_FLAG_*). */
  flags: number;
  blockSizes?: NbdBlockSizes;
  /** The server agreed to NBD_OPT_STRUCTURED_REPLY. */
  structuredReplies: boolean;
  /** Context id the server gave "base:allocation", when it supports it. */
  allocationContext?: number;
}
