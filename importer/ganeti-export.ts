/**
 * The Ganeti export directory: `<dir>/<instance>/config.ini` plus one raw
 * dump per disk (`disk0.raw`, …), ready for
 * `gnt-backup import --src-dir <dir>/<instance>` (or, with <dir> =
 * /var/lib/ganeti/export, `gnt-backup import --src-node NODE`). It is built
 * in a private work directory inside <dir> and renamed into place when
 * complete (place.ts); an existing `<dir>/<instance>` in any form, a dangling
 * symbolic link included, is never replaced.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buildConfigIni, firmwareParams } from './config-ini.js';
import type { Logger } from '../lib/log.js';
import { fsStep } from './fs-errors.js';
import { estimateOutputBytes } from './output-plan.js';
import { checkNameFree, placeDir, placeRawDisk, writeNewFile, withWorkDir, type OutputPlace } from './place.js';
import type { NicDefaults, StagedImport } from './types.js';

export interface GanetiExportOptions {
  os: string;
  hypervisor: string;
  nic: NicDefaults;
  /** --uefi-kvm-extra: the admin's kvm_extra for UEFI machines (config-ini.ts DEFAULT_UEFI_KVM_EXTRA otherwise). */
  uefiKvmExtra?: string;
  logger?: Logger;
}

export function dumpName(index: number): string {
  return `disk${index}.raw`;
}

/** Writes the export dir into `place` and returns its path. */
export async function writeGanetiExport(
  staged: StagedImport,
  place: OutputPlace,
  opts: GanetiExportOptions,
): Promise<string> {
  const name = staged.instanceName;
  const final = join(place.dir, name);
  const ini = buildConfigIni({
    machine: staged.machine,
    instanceName: staged.instanceName,
    diskSizes: staged.disks.map((d) => d.capacity),
    diskDumps: staged.disks.map((d) => dumpName(d.index)),
    defaultOs: opts.os,
    defaultHypervisor: opts.hypervisor,
    nic: opts.nic,
    uefiKvmExtra: opts.uefiKvmExtra,
  });
  const hv = staged.machine.ganeti?.hypervisor ?? opts.hypervisor;
  for (const note of firmwareParams(staged.machine.firmware, hv, opts.uefiKvmExtra).notes) opts.logger?.info(note);
  await checkNameFree(place, name);
  // Only a copy (staging on another filesystem) takes space; a hard link takes none and cannot fill it.
  const needed = estimateOutputBytes(
    { kind: 'ganeti-export', dir: place.dir },
    staged.disks.map((d) => ({ data: d.dataBytes })),
    false,
  );
  return withWorkDir(place, needed, async (work) => {
    await fsStep({ path: final, place: place.dir, action: 'create' }, () => mkdir(work.at(name), { mode: 0o755 }));
    for (const d of staged.disks)
      await placeRawDisk(d.path, d.capacity, work.at(`${name}/${dumpName(d.index)}`), {
        path: join(final, dumpName(d.index)),
        place: place.dir,
      });
    await writeNewFile(work.at(`${name}/config.ini`), { path: join(final, 'config.ini'), place: place.dir }, ini);
    const placed = await placeDir(work, name, place, name);
    await place.sync();
    return placed;
  });
}
