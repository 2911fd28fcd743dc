/**
 * A logical volume as a block device, without device-mapper:
 *
 *   one range (a linear LV of one segment, or segments that follow each other
 *   on one PV):  an offset loop device on the disk's nbdfuse file, like a partition;
 *   several ranges (segments apart, or on several PVs/disks):
 *       composed-server.ts (our NBD server over the ranges of the nbdfuse files)
 *       ──nbdfuse──▶ WORK/p2v-lv-N/p2v-fuse-N/mnt/disk ──losetup──▶ /dev/loopN
 *
 * Writes and trims reach the overlays either way (see composed-server.ts), so
 * fixups, mkswap and fstrim work on an LV as on a partition.
 *
 *   attachVolume(volume, diskFiles, workDir): Promise<AttachedPartition>
 */
import { mkdtemp, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { onExit } from '../../lib/exit-actions.js';
import type { InspectedVolume } from '../../guest/types.js';
import { attachPartition, exposeOverlay, type AttachedPartition } from '../disk-files.js';
import { serveComposed } from './composed-server.js';

export async function attachVolume(
  volume: InspectedVolume,
  diskFiles: string[],
  workDir: string,
  opts: { readOnly?: boolean } = {},
): Promise<AttachedPartition> {
  const fileOf = (disk: number) => {
    const f = diskFiles[disk];
    if (!f) throw new Error(`LV ${volume.id}: disk ${disk} is not exposed`);
    return f;
  };
  if (volume.ranges.length === 1) {
    const r = volume.ranges[0]!;
    return attachPartition(fileOf(r.disk), r.offset, r.size, opts);
  }
  const dir = await mkdtemp(join(workDir, 'p2v-lv-'));
  const socket = join(dir, 'nbd.sock');
  // rmdir, never rm -r: the FUSE view lives below it until it is unmounted.
  const removeDir = onExit(`remove ${dir}`, async () => {
    await rm(socket, { force: true });
    await rmdir(dir).catch(() => undefined);
  });
  const server = await serveComposed(
    volume.ranges.map((r) => ({ file: fileOf(r.disk), offset: r.offset, size: r.size })),
    socket,
  );
  const stopServer = onExit(`stop the NBD view of LV ${volume.id}`, () => server.close());
  const undo = async () => {
    await stopServer.run();
    await removeDir.run();
  };
  try {
    const view = await exposeOverlay(
      { source: volume.id, socket, uri: `nbd+unix:///?socket=${socket}`, close: async () => undefined },
      dir,
    );
    try {
      const loop = await attachPartition(view.path, 0, server.size, opts);
      return {
        ...loop,
        async detach() {
          try {
            await loop.detach();
          } finally {
            await view.close();
            await undo();
          }
        },
      };
    } catch (e) {
      await view.close();
      throw e;
    }
  } catch (e) {
    await undo();
    throw e;
  }
}
