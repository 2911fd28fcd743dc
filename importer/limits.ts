/**
 * Hard limits of the outputs, checked on the descriptor before any disk byte
 * is written. A Ganeti export with more disks or NICs than Ganeti takes is
 * not refused by Ganeti: `gnt-backup import` reads `disk0…disk15` and
 * `nic0…nic7` from config.ini and silently drops the rest, so an instance
 * would come up without some of its disks. Refusing it here, at the start of
 * the stream, costs the sender nothing.
 */
import { P2vError } from '../lib/errors.js';
import type { MachineDescription } from '../ovf/types.js';
import type { OutputSpec } from './types.js';

/**
 * Ganeti's maxima per instance: constants.MAX_DISKS and constants.MAX_NICS
 * (ganeti/_constants.py of Ganeti 3.0; the same since 2.x). Change them only
 * together with the Ganeti versions we support.
 */
export const GANETI_MAX_DISKS = 16;
export const GANETI_MAX_NICS = 8;

/** Refuse a machine a requested output cannot hold. */
export function checkOutputLimits(m: Pick<MachineDescription, 'disks' | 'nics'>, outputs: OutputSpec[]): void {
  if (!outputs.some((o) => o.kind === 'ganeti-export')) return;
  if (m.disks.length > GANETI_MAX_DISKS) {
    throw new P2vError(
      'POLICY',
      `the machine has ${m.disks.length} disks but a Ganeti instance takes at most ${GANETI_MAX_DISKS}`,
      { hint: 'export fewer disks (p2v-export --disk for each one to keep), or use --ova, --raw or --qcow2' },
    );
  }
  if (m.nics.length > GANETI_MAX_NICS) {
    throw new P2vError(
      'POLICY',
      `the machine has ${m.nics.length} network interfaces but a Ganeti instance takes at most ${GANETI_MAX_NICS}`,
      { hint: 'remove network interfaces from the source machine, or use --ova, --raw or --qcow2' },
    );
  }
}
