/**
 * What each disk holds, from its bytes alone: the partition table
 * (guest/partitions.ts, sfdisk on the disk file) and the filesystem of each
 * partition (blkid -p at its offset in the file: no device is needed), plus
 * the names the live system gives the disk, for messages and as hardware
 * evidence for the device map.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../lib/run.js';
import { isContainerPartition, readPartitionTable } from '../partitions.js';
import type { InspectedDisk, InspectedPartition } from '../types.js';

/** One disk to inspect: what the user named and the disk as a host file. */
export interface DiskImage {
  /** /dev/sda or an image file, as the user named it. */
  source: string;
  /** The disk's bytes as a host file (an nbdfuse file of the overlay). */
  path: string;
  /** Size in bytes; 0 when not known yet (the file's size is taken). */
  size: number;
}

/** blkid -p on a region of a file: TYPE, UUID, LABEL (undefined fields when nothing is found). */
export async function probeFilesystem(
  file: string,
  offset: number,
  size: number,
): Promise<{ fsType?: string; fsUuid?: string; fsLabel?: string }> {
  const r = await run('blkid', ['-p', '-o', 'export', '--offset', String(offset), '--size', String(size), file], {
    allowFailure: true,
  });
  // Exit 2: nothing recognised. Anything else non-zero: ambivalent or unreadable; report nothing rather than guess.
  if (r.exitCode !== 0) return {};
  const kv: Record<string, string> = {};
  for (const l of String(r.stdout).split('\n')) {
    const i = l.indexOf('=');
    if (i > 0) kv[l.slice(0, i)] = l.slice(i + 1);
  }
  return { fsType: kv.TYPE, fsUuid: kv.UUID?.toLowerCase(), fsLabel: kv.LABEL };
}

/**
 * The live system's name of a disk, for messages only ("loop0", "sdb",
 * "cciss/c0d0"; an image file gets sd<letter> by position). Never used to
 * map the guest's device names: see guest/device-map.ts.
 */
function liveName(source: string, index: number): string {
  if (source.startsWith('/dev/')) return source.slice('/dev/'.length);
  return `sd${String.fromCharCode(97 + (index % 26))}`;
}

/**
 * The by-id and by-path links of the live system that point at this very
 * device (whole disks only). They are derived from the hardware (model and
 * serial, bus path), so the guest saw the same names.
 */
async function hardwareLinks(source: string): Promise<string[]> {
  if (!source.startsWith('/dev/')) return [];
  const target = await realpath(source).catch(() => null);
  if (!target) return [];
  const out: string[] = [];
  for (const by of ['by-id', 'by-path']) {
    const dir = `/dev/disk/${by}`;
    for (const name of (await readdir(dir).catch(() => [] as string[])).sort()) {
      if (/-part\d+$/.test(name)) continue;
      if ((await realpath(join(dir, name)).catch(() => null)) === target) out.push(`disk/${by}/${name}`);
    }
  }
  return out;
}

/** Partition table and filesystems of one disk. */
export async function inspectDisk(given: DiskImage, index: number): Promise<InspectedDisk> {
  const size = given.size > 0 ? given.size : (await stat(given.path)).size;
  const table = await readPartitionTable(given.path);
  const disk: InspectedDisk = {
    index,
    source: given.source,
    sourceName: liveName(given.source, index),
    size,
    partitionTable: table.type,
    diskId: table.diskId,
    partitions: [],
  };
  const links = await hardwareLinks(given.source);
  if (links.length) disk.hardwareLinks = links;
  // The partitions are probed at once: each blkid reads through FUSE and the overlay, and mostly waits.
  const found = await Promise.all(
    table.partitions.map((p) => (isContainerPartition(p) ? undefined : probeFilesystem(given.path, p.start, p.size))),
  );
  for (const [i, p] of table.partitions.entries()) {
    const ip: InspectedPartition = { number: p.number, start: p.start, size: p.size, type: p.type };
    if (p.partUuid) ip.partUuid = p.partUuid;
    if (p.name) ip.partLabel = p.name;
    if (p.bootable !== undefined) ip.bootable = p.bootable;
    const fs = found[i];
    if (fs?.fsType) ip.fsType = fs.fsType;
    if (fs?.fsUuid) ip.fsUuid = fs.fsUuid;
    if (fs?.fsLabel) ip.fsLabel = fs.fsLabel;
    disk.partitions.push(ip);
  }
  if (table.type === 'none') {
    const fs = await probeFilesystem(given.path, 0, size);
    if (fs.fsType)
      disk.wholeDiskFs = {
        fsType: fs.fsType,
        ...(fs.fsUuid ? { fsUuid: fs.fsUuid } : {}),
        ...(fs.fsLabel ? { fsLabel: fs.fsLabel } : {}),
      };
  }
  return disk;
}
