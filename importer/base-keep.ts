/**
 * When an import becomes its machine's base (docs/design-delta.md): after a
 * complete import's outputs are written, and when a full import stops part
 * way (its received blocks are a base too, so the same command again sends
 * only what is missing). Keeping a base never fails the import: a problem is
 * logged and the import's own result stands.
 */
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../lib/log.js';
import type { MachineDescription } from '../ovf/types.js';
import { baseMapName, keepBase, type BaseSource } from './base.js';
import { createRawFileSink } from './disk-sink.js';
import { rawDiskName } from './stage-disk.js';
import type { StagedImport } from './types.js';

/** Keep a committed import's disks as the base of its machine; `move` when the staged copy goes away next. */
export async function keepCompleteBase(
  staging: string,
  staged: StagedImport,
  opts: { move: boolean; logger: Logger },
): Promise<void> {
  if (staged.disks.some((d) => d.direct)) {
    opts.logger.info('no base kept: disk 0 was written straight onto the device');
    return;
  }
  const disks: BaseSource[] = staged.disks.map((d) => ({
    index: d.index,
    capacity: d.capacity,
    path: d.path,
    ...(d.mapDigest ? { map: { path: join(staged.dir, baseMapName(d.index)), digest: d.mapDigest } } : {}),
  }));
  await keepBase(staging, staged.instanceName, 'complete', disks, opts).catch((e: unknown) =>
    opts.logger.warn(`could not keep the base of ${staged.instanceName}: ${(e as Error).message}`),
  );
}

/** Keep what a stopped full import received (disks not reached yet are kept empty). */
export async function keepInterruptedBase(
  staging: string,
  name: string,
  machine: MachineDescription,
  partialDir: string,
  logger: Logger,
): Promise<void> {
  try {
    const disks: BaseSource[] = [];
    let any = false;
    for (const [index, d] of machine.disks.entries()) {
      if (d.capacity === undefined) return; // sizes come from the images: nothing to build a base on
      const path = join(partialDir, rawDiskName(index));
      const st = await lstat(path).catch(() => undefined);
      if (st?.isFile() && st.size === d.capacity) any = true;
      else {
        if (st) return; // a qemu-img intermediate or a short file: not a disk we can trust
        const sink = await createRawFileSink(path, d.capacity);
        await sink.finish();
      }
      disks.push({ index, capacity: d.capacity, path });
    }
    if (!any) return; // nothing was received
    await keepBase(staging, name, 'interrupted', disks, { move: true, logger });
  } catch (e) {
    logger.warn(`could not keep what was received as the base of ${name}: ${(e as Error).message}`);
  }
}
