/**
 * The importer's plain data: what one `p2v-import` run is asked to do
 * (ImportRequest), what it staged (StagedImport) and the outputs it can write
 * from a staged import (OutputSpec). Nothing here touches the filesystem.
 */
import type { MachineDescription } from '../ovf/types.js';
import type { Logger } from '../lib/log.js';
import type { PhaseReporter } from '../lib/progress.js';

/** One destination, written from a complete, verified staged import. */
export type OutputSpec =
  /** DIR/<instance>/config.ini + disk dumps for `gnt-backup import`. */
  | { kind: 'ganeti-export'; dir: string }
  /** A standard single-file OVA with streamOptimized VMDK disks. */
  | { kind: 'ova'; file: string }
  /** DIR/<instance>-diskN.raw, sparse. */
  | { kind: 'raw'; dir: string }
  /** DIR/<instance>-diskN.qcow2. */
  | { kind: 'qcow2'; dir: string }
  /** Disk 0 written onto a block device (the RAM-booted target). */
  | { kind: 'device'; path: string };

/** Ganeti NIC defaults when the descriptor's GanetiSection does not say. */
export interface NicDefaults {
  mode: string;
  link: string;
}

export interface ImportRequest {
  /** Staging directory: all work happens under it. */
  staging: string;
  /** The OVA bytes (stdin or a file). */
  input: AsyncIterable<Buffer> | NodeJS.ReadableStream;
  /** Instance name given by the operator (already validated). */
  name?: string;
  /** Largest virtual disk accepted, in bytes. */
  maxDiskSize?: number;
  /**
   * Disk 0 goes to this device: refuse a larger disk before any data is written.
   * With `direct`, a streamOptimized disk 0 is decoded straight onto the device
   * as it arrives (no staged copy: the RAM-booted target has no room for one).
   */
  disk0Target?: { path: string; size: number; direct?: boolean };
  /** Refuse an OVA without a manifest. */
  requireManifest?: boolean;
  /** Keep `<id>.partial/` after a failure, for debugging. */
  keepPartial?: boolean;
  /** Keep `<staging>/<id>/` after the outputs are written. */
  keepStaged?: boolean;
  outputs: OutputSpec[];
  /** Ganeti OS (NAME+VARIANT) when the descriptor names none. */
  os: string;
  nic: NicDefaults;
  logger: Logger;
  /** Progress of each disk received, on stderr, when `phases` is not given: a TTY bar, JSON lines, or nothing. */
  progress?: 'tty' | 'json' | 'none';
  /** Where each phase (receive, every output) is reported: the TTY bar and the --progress-fd JSON lines. */
  phases?: PhaseReporter;
  /** --max-staging: refuse an import that would take the staging dir past this many bytes. */
  maxStaging?: number;
  /** --idle-timeout in milliseconds without a byte on the input (0: none; unset: the 10-minute default). */
  idleTimeoutMs?: number;
  /** --keep-base: keep the received disks as the machine's base for deltas and resumes (docs/design-delta.md). */
  keepBase?: boolean;
}

/** One disk decoded into the staging dir as a sparse raw file. */
export interface StagedDisk {
  /** Position in the descriptor's DiskSection (Ganeti's disk index). */
  index: number;
  diskId: string;
  /** Absolute path of the raw file (inside the staged dir). */
  path: string;
  /** Virtual size in bytes. */
  capacity: number;
  /** Bytes of data actually written (non-zero grains / blocks). */
  dataBytes: number;
  /** Decoded straight onto the target device (`path` is the device), not staged. */
  direct?: boolean;
  /** Applied from a delta: its block map (`diskN.map` next to it) has this digest. */
  mapDigest?: string;
}

/** A complete, verified import sitting in `<staging>/<id>/`. */
export interface StagedImport {
  id: string;
  dir: string;
  machine: MachineDescription;
  /** Ganeti-valid instance name. */
  instanceName: string;
  disks: StagedDisk[];
  /** True when the OVA carried a manifest and every digest matched. */
  verified: boolean;
  /** A delta applied in place: the disks were the base's own, so the old base dir has none now. */
  baseTaken?: boolean;
}

/** What one run produced: the staged import and the paths written. */
export interface ImportResult {
  staged: StagedImport;
  written: string[];
}
