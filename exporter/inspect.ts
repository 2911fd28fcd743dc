/**
 * inspect: the exporter's entry to inspection. The detection itself is guest
 * knowledge (guest/inspect/); this module supplies what only the exporter has:
 * the disks as nbdfuse files, the loop-device mounts (exporter/mount.ts) and
 * the live machine's description (exporter/live-machine.ts).
 *
 *   inspect(disks, { workDir, machine?, mapDevice?, log }): Promise<Inspection>
 */
import { mkdtemp, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeviceMapping } from '../guest/device-names.js';
import { inspectGuest, type GuestMounter } from '../guest/inspect/index.js';
import type { Inspection, MachineFacts } from '../guest/types.js';
import type { Logger } from '../lib/log.js';
import { liveMachine } from './live-machine.js';
import { multipathSources } from './lvm/multipath.js';
import { attachPartition, type AttachedPartition, type ExposedDisk } from './disk-files.js';
import { mountFilesystem, mountGuest } from './mount.js';
import { attachVolume } from './lvm/attach.js';

export interface InspectDisk {
  /** What the user named (/dev/sda or an image file). */
  source: string;
  exposed: ExposedDisk;
  size: number;
}

export interface InspectOptions {
  workDir: string;
  /** Describe this machine instead of the live host. */
  machine?: MachineFacts;
  /** --map-device: the user's word on which exported disk a guest disk name is. */
  mapDevice?: DeviceMapping[];
  /** --lvm-as-is: copy a VG with LVs we cannot expose untouched instead of refusing. */
  lvmAsIs?: boolean;
  log: Logger;
}

/** Mounts through loop devices over the exposed disk files, read-only, under workDir. */
function loopMounter(disks: InspectDisk[], workDir: string): GuestMounter {
  const probe = async <T>(
    attach: () => Promise<AttachedPartition>,
    fsType: string,
    body: (dir: string) => Promise<T>,
  ) => {
    const dir = await mkdtemp(join(workDir, 'p2v-probe-'));
    try {
      const part = await attach();
      try {
        const fs = await mountFilesystem(part.device, dir, fsType, { readOnly: true });
        try {
          return await body(dir);
        } finally {
          await fs.unmount();
        }
      } finally {
        await part.detach();
      }
    } finally {
      await rmdir(dir).catch(() => undefined);
    }
  };
  return {
    withFilesystem: (disk, offset, size, fsType, body) =>
      probe(() => attachPartition(disks[disk]!.exposed.path, offset, size), fsType, body),
    withVolume: (volume, fsType, body) =>
      probe(
        () =>
          attachVolume(
            volume,
            disks.map((d) => d.exposed.path),
            workDir,
          ),
        fsType,
        body,
      ),
    mountGuest: (inspection, warn) =>
      mountGuest(
        inspection,
        disks.map((d) => d.exposed),
        workDir,
        { readOnly: true, warn },
      ),
  };
}

export async function inspect(disks: InspectDisk[], opts: InspectOptions): Promise<Inspection> {
  return inspectGuest(
    disks.map((d) => ({ source: d.source, path: d.exposed.path, size: d.size })),
    {
      machine: opts.machine ?? (await liveMachine()),
      mounter: loopMounter(disks, opts.workDir),
      ...(opts.mapDevice ? { mapDevice: opts.mapDevice } : {}),
      ...(opts.lvmAsIs ? { lvmAsIs: true } : {}),
      notSupported: await multipathSources(disks.map((d) => d.source)),
      log: opts.log,
    },
  );
}
