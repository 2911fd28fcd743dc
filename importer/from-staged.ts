/**
 * `p2v-import --from-staged ID`: write outputs from a staged copy kept in
 * `<staging>/<ID>/` (an import run without outputs, with --keep-staged, or
 * one whose outputs failed, e.g. because the export already existed). The
 * copy was verified when it was received; what is checked again here is
 * that it is ours and whole: a committed import id, a real directory, its
 * machine.json, and one regular raw file per disk of the size recorded
 * there, none of them a symlink. While the outputs are written the copy is
 * claimed with an owner file (owner.ts), so --remove and a second
 * --from-staged leave it alone. As after an import, the copy is removed once
 * every output is written, unless --keep-staged; on failure it stays.
 */
import { lstat, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { onExit } from '../lib/exit-actions.js';
import type { Logger } from '../lib/log.js';
import { SECTOR_SIZE, type MachineDescription } from '../ovf/types.js';
import { targetSize } from './disk-sink.js';
import { importIdOf, MAX_MACHINE_JSON, readOurs } from './housekeeping.js';
import { checkInstanceName, isValidInstanceName } from '../lib/instance-name.js';
import { checkOutputLimits } from './limits.js';
import { withKeptHint, writeOutputsReporting, type PhaseReporting } from './output-phases.js';
import { claimOwner, ownerAlive, readOwner, releaseOwner } from './owner.js';
import { checkFitsTarget } from './policy.js';
import { baseMapName } from './base.js';
import { rawDiskName } from './stage-disk.js';
import { MACHINE_FILE } from './staging.js';
import type { ImportResult, NicDefaults, OutputSpec, StagedDisk, StagedImport } from './types.js';

export interface FromStagedRequest extends PhaseReporting {
  staging: string;
  /** The committed import's id, as --list shows it. */
  id: string;
  outputs: OutputSpec[];
  /** Overrides the name recorded at import time. */
  name?: string;
  os: string;
  hypervisor: string;
  nic: NicDefaults;
  /** --uefi-kvm-extra (config-ini.ts). */
  uefiKvmExtra?: string;
  keepStaged?: boolean;
  logger: Logger;
}

function damaged(dir: string, what: string): P2vError {
  return new P2vError('USAGE', `${dir} is not a usable staged import: ${what}`, {
    hint: 'see p2v-import --list; send the machine again if the copy was changed',
  });
}

/** machine.json as receive.ts writes it, checked for the fields used here. */
async function readRecord(
  dir: string,
): Promise<{ instanceName: string; machine: MachineDescription; verified: boolean; mapDigests: unknown[] }> {
  const text = await readOurs(join(dir, MACHINE_FILE), MAX_MACHINE_JSON);
  if (text === undefined) throw damaged(dir, `no readable ${MACHINE_FILE}`);
  let j: { instanceName?: unknown; machine?: MachineDescription; manifestFound?: unknown; mapDigests?: unknown };
  try {
    j = JSON.parse(text) as typeof j;
  } catch {
    throw damaged(dir, `${MACHINE_FILE} is not valid JSON`);
  }
  if (typeof j.instanceName !== 'string' || !isValidInstanceName(j.instanceName))
    throw damaged(dir, `${MACHINE_FILE} names no valid instance`);
  if (!j.machine || !Array.isArray(j.machine.disks) || !Array.isArray(j.machine.nics) || j.machine.disks.length === 0)
    throw damaged(dir, `${MACHINE_FILE} describes no disks`);
  return {
    instanceName: j.instanceName,
    machine: j.machine,
    verified: j.manifestFound === true,
    mapDigests: Array.isArray(j.mapDigests) ? j.mapDigests : [],
  };
}

/** The staged raw disks, each a regular file (never a link) of its recorded capacity. */
async function stagedDisks(dir: string, m: MachineDescription): Promise<StagedDisk[]> {
  const disks: StagedDisk[] = [];
  for (const [index, d] of m.disks.entries()) {
    const path = join(dir, rawDiskName(index));
    const st = await lstat(path).catch(() => undefined);
    if (!st) throw damaged(dir, `${rawDiskName(index)} is missing`);
    if (!st.isFile()) throw damaged(dir, `${rawDiskName(index)} is not a regular file`);
    const rounded = d.capacity === undefined ? undefined : Math.ceil(d.capacity / SECTOR_SIZE) * SECTOR_SIZE;
    if (d.capacity !== undefined && st.size !== d.capacity && st.size !== rounded)
      throw damaged(dir, `${rawDiskName(index)} holds ${st.size} bytes, not the ${d.capacity} recorded`);
    disks.push({ index, diskId: d.diskId, path, capacity: st.size, dataBytes: st.blocks * 512 });
  }
  return disks;
}

/** A committed import read back: its machine.json and one checked raw file per disk. */
export async function readStagedImport(dir: string, id: string, name?: string): Promise<StagedImport> {
  const record = await readRecord(dir);
  return {
    id,
    dir,
    machine: record.machine,
    instanceName: name !== undefined ? checkInstanceName(name) : record.instanceName,
    verified: record.verified,
    disks: await withMaps(dir, await stagedDisks(dir, record.machine), record.mapDigests),
  };
}

/** A disk's block map as receive.ts recorded it, when its file is still there (a regular file, not a link). */
async function withMaps(dir: string, disks: StagedDisk[], digests: unknown[]): Promise<StagedDisk[]> {
  const out: StagedDisk[] = [];
  for (const d of disks) {
    const digest = digests[d.index];
    const st = await lstat(join(dir, baseMapName(d.index))).catch(() => undefined);
    out.push(
      typeof digest === 'string' && /^[0-9a-f]{64}$/.test(digest) && st?.isFile() ? { ...d, mapDigest: digest } : d,
    );
  }
  return out;
}

/** Claim the copy for this run; refused while another process works in it. */
export async function claimStaged(dir: string, id: string): Promise<void> {
  const inUse = () =>
    new P2vError('USAGE', `staged import ${id} is in use by another p2v-import`, {
      hint: 'wait for that run to finish (p2v-import --list shows it as committed-in-use)',
    });
  const owner = await readOwner(dir);
  if (owner === 'unreadable' || (owner !== 'none' && ownerAlive(owner))) throw inUse();
  if (owner !== 'none') await releaseOwner(dir); // left by a run that is gone
  try {
    await claimOwner(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw inUse();
    throw e;
  }
}

export async function importFromStaged(req: FromStagedRequest): Promise<ImportResult> {
  const parsed = importIdOf(req.id);
  if (!parsed || parsed.partial) {
    throw new P2vError('USAGE', `"${req.id}" is not the id of a complete import`, {
      hint: 'give an ID that p2v-import --list shows as committed',
    });
  }
  if (req.outputs.length === 0) {
    throw new P2vError('USAGE', '--from-staged needs at least one output', {
      hint: 'add --ganeti-export DIR, --ova FILE, --raw DIR, --qcow2 DIR or --device DEV',
    });
  }
  const dir = join(resolve(req.staging), parsed.id);
  const st = await lstat(dir).catch(() => undefined);
  if (!st)
    throw new P2vError('USAGE', `no staged import ${parsed.id} in ${resolve(req.staging)}`, {
      hint: 'see p2v-import --list',
    });
  if (!st.isDirectory()) throw damaged(dir, 'it is not a directory');

  await claimStaged(dir, parsed.id);
  const release = onExit(`release ${dir}`, () => releaseOwner(dir));
  try {
    const staged = await readStagedImport(dir, parsed.id, req.name);
    checkOutputLimits(staged.machine, req.outputs);
    for (const o of req.outputs) {
      if (o.kind !== 'device') continue;
      const size = await targetSize(o.path).catch((e: unknown) => {
        if (e instanceof P2vError) throw e;
        throw new P2vError('USAGE', `cannot open ${o.path}: ${(e as Error).message}`, {
          hint: 'give --device an existing disk',
          cause: e,
        });
      });
      checkFitsTarget(staged.disks[0]!.capacity, { path: o.path, size });
    }
    const written = await writeOutputsReporting(staged, req.outputs, {
      os: req.os,
      hypervisor: req.hypervisor,
      nic: req.nic,
      uefiKvmExtra: req.uefiKvmExtra,
      logger: req.logger,
      phases: req.phases,
    });
    if (req.keepStaged) {
      written.unshift(dir);
    } else {
      release.cancel();
      await rm(dir, { recursive: true, force: true });
    }
    return { staged, written };
  } catch (e) {
    if (e instanceof P2vError && !e.message.includes(dir)) throw withKeptHint(e, `the staged import stays in ${dir}`);
    throw e;
  } finally {
    await release.run();
  }
}
