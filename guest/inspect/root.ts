/**
 * Finding the guest's root filesystem: every filesystem that can hold a Linux
 * root is mounted read-only for a quick look (through the caller's
 * GuestMounter) and counts when it has /etc/os-release and /etc/fstab.
 */
import { P2vError } from '../../lib/errors.js';
import { GuestTree } from '../files.js';
import { parseOsRelease } from '../os-release.js';
import { parseFstab, type FstabEntry } from '../references.js';
import type { InspectedDisk, InspectedVolume, InspectedVolumeGroup, Inspection } from '../types.js';

/** Filesystems that can hold a Linux root. */
export const ROOT_FS = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs']);

/** A (disk, partition) reference; partition 0 is the whole disk. On an LV: the PV's, and `volume` is "vg/lv". */
export interface DiskRef {
  disk: number;
  partition: number;
  volume?: string;
}

/**
 * How inspection mounts what it looks at. The exporter provides it (loop
 * devices over its nbdfuse files, exporter/mount.ts); guest/ only says what
 * it needs mounted.
 */
export interface GuestMounter {
  /** Mount bytes [offset, offset+size) of disk `disk` read-only, run body on the directory, unmount. */
  withFilesystem<T>(
    disk: number,
    offset: number,
    size: number,
    fsType: string,
    body: (dir: string) => Promise<T>,
  ): Promise<T>;
  /** Mount an LVM logical volume read-only, run body on the directory, unmount. */
  withVolume?<T>(volume: InspectedVolume, fsType: string, body: (dir: string) => Promise<T>): Promise<T>;
  /** Mount the whole guest read-only as `inspection`'s mountpoints say; warnings go to `warn`. */
  mountGuest(inspection: Inspection, warn: (m: string) => void): Promise<{ root: string; unmountAll(): Promise<void> }>;
}

export interface RootCandidate {
  ref: DiskRef;
  osRelease: Record<string, string>;
  fstab: FstabEntry[];
  hostname?: string;
}

/** Every root filesystem found, in disk and partition order. */
export async function findRoots(
  disks: InspectedDisk[],
  mounter: GuestMounter,
  warn: (m: string) => void,
  volumeGroups: InspectedVolumeGroup[] = [],
): Promise<RootCandidate[]> {
  const roots: RootCandidate[] = [];
  const look = async (dir: string, ref: DiskRef): Promise<RootCandidate | null> => {
    const tree = new GuestTree(dir);
    const osr = await tree.read('/etc/os-release');
    const fstab = await tree.read('/etc/fstab');
    if (osr === null || fstab === null) return null;
    const hostname = (await tree.read('/etc/hostname'))?.split('\n')[0]?.trim() || undefined;
    return { ref, osRelease: parseOsRelease(osr), fstab: parseFstab(fstab), hostname };
  };
  const why = (e: unknown) =>
    // The kernel's complaint says more to an admin than our command line does.
    e instanceof P2vError && e.stderrTail
      ? e.stderrTail.split('\n').pop()!
      : e instanceof Error
        ? e.message
        : String(e);
  for (const d of disks) {
    const cands: { ref: DiskRef; fsType: string; offset: number; size: number }[] = [];
    if (d.wholeDiskFs && ROOT_FS.has(d.wholeDiskFs.fsType))
      cands.push({ ref: { disk: d.index, partition: 0 }, fsType: d.wholeDiskFs.fsType, offset: 0, size: d.size });
    for (const p of d.partitions)
      if (p.fsType && ROOT_FS.has(p.fsType))
        cands.push({ ref: { disk: d.index, partition: p.number }, fsType: p.fsType, offset: p.start, size: p.size });
    for (const c of cands) {
      const where = c.ref.partition ? `${d.sourceName} partition ${c.ref.partition}` : d.sourceName;
      try {
        const found = await mounter.withFilesystem(d.index, c.offset, c.size, c.fsType, (dir) => look(dir, c.ref));
        if (found) roots.push(found);
      } catch (e) {
        warn(`the ${c.fsType} filesystem on ${where} cannot be mounted: it is copied whole (${why(e)})`);
      }
    }
  }
  for (const g of volumeGroups)
    for (const v of g.volumes) {
      if (!v.fsType || !ROOT_FS.has(v.fsType) || !mounter.withVolume) continue;
      const first = v.ranges[0]!;
      const pv =
        g.pvs.find(
          (p) =>
            p.disk === first.disk &&
            p.firstExtent <= first.offset &&
            first.offset < p.firstExtent + p.extents * g.extentSize,
        ) ?? g.pvs[0]!;
      const ref: DiskRef = { disk: first.disk, partition: pv.partition, volume: v.id };
      try {
        const found = await mounter.withVolume(v, v.fsType, (dir) => look(dir, ref));
        if (found) roots.push(found);
      } catch (e) {
        warn(`the ${v.fsType} filesystem on LV ${v.id} cannot be mounted: it is copied whole (${why(e)})`);
      }
    }
  return roots;
}
