/**
 * The contract every p2v-export output implements (stdout, file, ssh,
 * direct), after virt-v2v's output modules: options are checked when the
 * output is chosen (choose.ts), `setup` takes what may be refused before any
 * work starts, the OVA is written through `send`, and `finalize` makes the
 * result real only once everything was written. The supervisor
 * (exporter/export.ts) calls them in that order and `abort` after a failure.
 */
import type { Writable } from 'node:stream';

/** Where writeOva writes: a regular file it may seek in, or a pipe it writes chunked members into. */
export type OvaSink = { mode: 'file'; path: string } | { mode: 'stream'; stream: Writable };

export type OutputKind = 'stdout' | 'stream' | 'file' | 'ssh' | 'direct';

export interface ExportOutput {
  readonly kind: OutputKind;
  /** Where the OVA goes, for the log and the report: "stdout", the file, USER@HOST. */
  readonly where: string;
  /** The progress phase `setup` is reported as, when it may take a while or fail on the far end. */
  readonly setupPhase?: 'connect';
  /**
   * Bytes of the disk the machine is written onto, when the output learns it
   * in `setup` (the direct target's own disk); undefined otherwise. Disk 0
   * is fitted to it (export.ts fitToTargetDisk, docs/design-fit.md).
   */
  targetDiskSize?: number;
  /**
   * Before any work: take everything that may be refused (create FILE.partial,
   * connect and check the host key, start the receiver), registered with the
   * exit-action registry so a failure or a signal releases it.
   */
  setup(): Promise<void>;
  /**
   * Write the OVA: `write` gets the sink and returns once the last byte is
   * written; the output then ends its stream. A far end that gives up ends the
   * send with its own error rather than leaving a write blocked on a full pipe.
   */
  send<T>(write: (sink: OvaSink) => Promise<T>): Promise<T>;
  /** After `send`: wait for the receiver's exit status, put the file in place. */
  finalize(): Promise<void>;
  /** After a failure at any stage: release what `setup` took now, not at exit. Safe to call twice. */
  abort(): Promise<void>;
}
