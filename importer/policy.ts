/**
 * Admission policy, applied to the descriptor BEFORE any disk byte is
 * written: the largest disk accepted (--disk-size) and room in staging for
 * what the disks will hold (populatedSize when the descriptor gives it,
 * otherwise the full capacity).
 */
import { statfs } from 'node:fs/promises';
import { P2vError } from '../lib/errors.js';
import type { OvfDisk } from '../ovf/types.js';
import { describeSize } from './size.js';

export function checkDiskSize(disk: Pick<OvfDisk, 'diskId'>, capacity: number, maxDiskSize: number | undefined): void {
  if (maxDiskSize !== undefined && capacity > maxDiskSize) {
    throw new P2vError(
      'POLICY',
      `disk ${disk.diskId} needs ${describeSize(capacity)} but at most ${describeSize(maxDiskSize)} is allowed`,
      {
        // The largest whole-MiB size under the limit: what p2v-export --target-size takes, and what Ganeti disks are made of.
        hint: `export it again fitted to the limit with p2v-export --target-size ${Math.floor(maxDiskSize / 2 ** 20)}M (or --target-size auto for the smallest that holds its data), or raise --disk-size on the staging host`,
      },
    );
  }
}

/** Bytes the staged disks are expected to take. */
export function expectedStagingBytes(disks: OvfDisk[]): number {
  return disks.reduce((sum, d) => sum + (d.populatedSize ?? d.capacity ?? 0), 0);
}

export async function checkFreeSpace(dir: string, needed: number): Promise<void> {
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  if (needed > free) {
    throw new P2vError(
      'POLICY',
      `staging ${dir} has ${describeSize(free)} free but the disks need ${describeSize(needed)}`,
      {
        hint: 'free space in the staging directory or use another with --staging',
      },
    );
  }
}

/** Disk 0 must fit the target device of --device. */
export function checkFitsTarget(capacity: number, target: { path: string; size: number } | undefined): void {
  if (target && capacity > target.size) {
    throw new P2vError(
      'POLICY',
      `${target.path} holds ${describeSize(target.size)} but the disk needs ${describeSize(capacity)}`,
      {
        hint: 'give a larger target device',
      },
    );
  }
}
