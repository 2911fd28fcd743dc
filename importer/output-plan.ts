/**
 * What the outputs of one run will create, and where, known as soon as the
 * descriptor is read: the final names (from the instance name and the disk
 * count), the directories they go to, and about how many bytes each takes.
 * checkOutputsBeforeData refuses a run whose outputs cannot be written —
 * the export name taken, a symbolic link at a name we will create, an
 * output directory that is not writable, not enough room — before the
 * first disk byte is read, instead of after the whole transfer.
 *
 * It runs inside the OVA reader's synchronous descriptor callback, hence the
 * *Sync calls: a handful of lstat/access/statfs, no data.
 */
import { accessSync, constants, lstatSync, statfsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { formatBytes } from '../lib/units.js';
import type { MachineDescription } from '../ovf/types.js';
import { fsError, isErrno } from './fs-errors.js';
import { checkPlaceStat, nameTaken, openOutputPlace, symlinkRefused, type OutputPlace } from './place.js';
import { expectedStagingBytes } from './policy.js';
import type { OutputSpec } from './types.js';

/** The directory an output writes into (none for a device). */
export function outputDir(o: OutputSpec): string | undefined {
  switch (o.kind) {
    case 'ova':
      return dirname(o.file);
    case 'device':
      return undefined;
    default:
      return o.dir;
  }
}

export function diskFileName(instanceName: string, index: number, ext: string): string {
  return `${instanceName}-disk${index}.${ext}`;
}

/** The names an output will create in its directory. */
export function outputNames(o: OutputSpec, instanceName: string, diskIndexes: number[]): string[] {
  switch (o.kind) {
    case 'ganeti-export':
      return [instanceName];
    case 'ova':
      return [basename(o.file)];
    case 'raw':
    case 'qcow2':
      return diskIndexes.map((i) => diskFileName(instanceName, i, o.kind));
    case 'device':
      return [];
  }
}

/** One disk as far as sizing goes: the bytes of data, and the size of its file in the OVA when known. */
export interface DiskBytes {
  data: number;
  fileSize?: number;
}

/** qcow2 metadata: an L2 entry (8 bytes) per 64 KiB cluster, plus header and tables. */
function qcow2Bytes(data: number): number {
  return data + Math.ceil(data / 8192) + 1024 * 1024;
}

/**
 * Bytes an output takes in its directory. A raw disk or a Ganeti export on
 * the staging filesystem is hard-linked and takes nothing more; an OVA's
 * compressed disks take about what they took in the OVA received.
 */
export function estimateOutputBytes(o: OutputSpec, disks: DiskBytes[], sameFsAsStaging: boolean): number {
  const sum = (f: (d: DiskBytes) => number) => disks.reduce((n, d) => n + f(d), 0);
  switch (o.kind) {
    case 'ganeti-export':
    case 'raw':
      return sameFsAsStaging ? 0 : sum((d) => d.data);
    case 'qcow2':
      return sum((d) => qcow2Bytes(d.data));
    case 'ova':
      return sum((d) => Math.min(d.fileSize ?? d.data, d.data)) + 1024 * 1024;
    case 'device':
      return 0;
  }
}

/** Each disk of a descriptor, sized the way the staging check sizes it. */
export function descriptorDiskBytes(m: MachineDescription): DiskBytes[] {
  return m.disks.map((d) => {
    const fileSize = m.files.find((f) => f.id === d.fileRef)?.size;
    return { data: d.populatedSize ?? d.capacity ?? fileSize ?? 0, fileSize };
  });
}

/** The configured output directories, created if missing, checked and held open (see place.ts). */
export async function openOutputPlaces(outputs: OutputSpec[]): Promise<Map<string, OutputPlace>> {
  const places = new Map<string, OutputPlace>();
  try {
    for (const o of outputs) {
      const dir = outputDir(o);
      if (dir !== undefined && !places.has(dir)) places.set(dir, await openOutputPlace(dir));
    }
  } catch (e) {
    await closeOutputPlaces(places);
    throw e;
  }
  return places;
}

export async function closeOutputPlaces(places: Map<string, OutputPlace>): Promise<void> {
  for (const p of places.values()) await p.close().catch(() => undefined);
}

function lstatOrNone(path: string) {
  try {
    return lstatSync(path);
  } catch (e) {
    if (isErrno(e) && e.code === 'ENOENT') return undefined;
    throw fsError(e, { path, action: 'look at' });
  }
}

/**
 * Refuse, before any disk byte, outputs that cannot be written: a final name
 * that exists in any form (a dangling symbolic link included), an output
 * directory that is a link, not a directory or not writable, or a filesystem
 * without room for the outputs (and the staged copy, when it shares it).
 */
export function checkOutputsBeforeData(
  machine: MachineDescription,
  instanceName: string,
  outputs: OutputSpec[],
  opts: { staging?: string } = {},
): void {
  const disks = descriptorDiskBytes(machine);
  const indexes = machine.disks.map((_, i) => i);
  const stagingDev = opts.staging !== undefined ? statSync(opts.staging, { throwIfNoEntry: false })?.dev : undefined;
  const perFs = new Map<number, { dir: string; needed: number }>();
  for (const o of outputs) {
    const dir = outputDir(o);
    if (dir === undefined) continue;
    const st = lstatOrNone(dir);
    if (!st) throw fsError(Object.assign(new Error('ENOENT'), { code: 'ENOENT' }), { path: dir, action: 'write to' });
    const bad = checkPlaceStat(dir, st);
    if (bad) throw bad;
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
    } catch (e) {
      throw fsError(e, { path: dir, action: 'write to', place: dir });
    }
    for (const name of outputNames(o, instanceName, indexes)) {
      const path = join(dir, name);
      const there = lstatOrNone(path);
      if (there) throw there.isSymbolicLink() ? symlinkRefused(path) : nameTaken(path);
    }
    const fs = perFs.get(st.dev) ?? { dir, needed: 0 };
    fs.needed += estimateOutputBytes(o, disks, st.dev === stagingDev);
    perFs.set(st.dev, fs);
  }
  for (const [dev, fs] of perFs) {
    // The staged copy stays until the outputs are written: on a shared filesystem both need room.
    const withStaging = dev === stagingDev;
    const needed = fs.needed + (withStaging ? expectedStagingBytes(machine.disks) : 0);
    if (fs.needed === 0) continue;
    const s = statfsSync(fs.dir);
    const free = s.bavail * s.bsize;
    if (needed > free) {
      throw new P2vError(
        'POLICY',
        `not enough space on ${fs.dir} for the ${withStaging ? 'staged copy and the ' : ''}outputs: ${formatBytes(needed)} needed, ${formatBytes(free)} free`,
        { hint: `free space on ${fs.dir}, or write the outputs somewhere else` },
      );
    }
  }
}
