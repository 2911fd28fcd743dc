/**
 * The Ganeti export directory: `<dir>/<instance>/config.ini` plus one raw
 * dump per disk (`disk0.raw`, …), ready for
 * `gnt-backup import --src-dir <dir>/<instance>` (or, with <dir> =
 * /var/lib/ganeti/export, `gnt-backup import --src-node NODE`). It is built
 * as `<dir>/.<instance>.p2v-<id>.tmp` and renamed into place when complete.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildConfigIni } from './config-ini.js';
import { ensureDir, placeDir, placeRawDisk, tempNameFor } from './place.js';
import type { NicDefaults, StagedImport } from './types.js';

export interface GanetiExportOptions {
  os: string;
  hypervisor: string;
  nic: NicDefaults;
}

export function dumpName(index: number): string {
  return `disk${index}.raw`;
}

/** Writes the export dir and returns its path. */
export async function writeGanetiExport(staged: StagedImport, dir: string, opts: GanetiExportOptions): Promise<string> {
  await ensureDir(dir);
  const final = join(dir, staged.instanceName);
  const ini = buildConfigIni({
    machine: staged.machine,
    instanceName: staged.instanceName,
    diskSizes: staged.disks.map((d) => d.capacity),
    diskDumps: staged.disks.map((d) => dumpName(d.index)),
    defaultOs: opts.os,
    defaultHypervisor: opts.hypervisor,
    nic: opts.nic,
  });
  const tmp = tempNameFor(final, staged.id);
  await mkdir(tmp.path, { mode: 0o755 });
  for (const d of staged.disks) await placeRawDisk(d.path, d.capacity, join(tmp.path, dumpName(d.index)));
  await writeFile(join(tmp.path, 'config.ini'), ini, { mode: 0o644 });
  await placeDir(tmp.path, final);
  tmp.forget();
  return final;
}
