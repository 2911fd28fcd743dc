/**
 * sparsify: make the overlay's free space into holes so the stream skips it.
 *
 * - every mounted filesystem is fstrim'med; the kernel's discards travel
 *   loop → nbdfuse (fallocate punch-hole) → NBD trim → the cow filter, which
 *   then reports those blocks as holes in its block status;
 * - filesystems the guest does not mount (no fstab entry) are mounted for the
 *   trim and unmounted again;
 * - swap partitions are punched whole and re-created with mkswap keeping
 *   their UUID and label, so fstab and resume= entries still match;
 * - LVM logical volumes are handled like partitions (exporter/lvm/attach.ts
 *   makes each a device), and the PV extents no LV uses are punched;
 * - anything else (LUKS, unknown) is copied whole, with a warning.
 * Every failure here is a warning: sparsify only saves space.
 *
 *   sparsify(inspection, mount, disks, { log, onProgress }): Promise<SparsifyReport>
 *   checkSourceNotMountedRw(source)  (re-exported from ./source-check)
 */
import { mkdtemp, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from '../lib/log.js';
import { requireProgram, run } from '../lib/run.js';
import { attachPartition, type AttachedPartition, type ExposedDisk } from './disk-files.js';
import { mountFilesystem, MOUNTABLE_FS, type GuestMount } from './mount.js';
import { attachVolume } from './lvm/attach.js';
import { isContainerPartition } from '../guest/partitions.js';
import type { DiskRange, InspectedDisk, Inspection } from '../guest/types.js';

export { checkSourceNotMountedRw } from './source-check.js';

export interface SparsifyReport {
  /** One entry per filesystem trimmed (or that failed to trim: trimmedBytes 0 and a warning). */
  /** On an LV, `volume` names it ("vg/lv") and disk/partition are those of its first range's PV. */
  filesystems: {
    disk: number;
    partition: number;
    volume?: string;
    guestPath?: string;
    fsType: string;
    trimmedBytes: number;
  }[];
  swaps: { disk: number; partition: number; volume?: string; uuid?: string; label?: string; bytes: number }[];
  /** LVM: bytes of PV extents no LV uses, punched per volume group. */
  lvmFree?: { vg: string; bytes: number }[];
  warnings: string[];
}

export interface SparsifyOptions {
  log: Logger;
  /**
   * Called with (regions handled so far, regions to handle) before the first
   * and after each filesystem or swap area: a running count, not an increment.
   */
  onProgress?: (done: number, total: number) => void;
}

/** Parse `fstrim -v` output: "/mnt: 54.7 MiB (57367552 bytes) trimmed". */
export function parseFstrim(out: string): number {
  const m = out.match(/\((\d+) bytes\) trimmed/);
  return m ? Number(m[1]) : 0;
}

async function fstrim(dir: string): Promise<number> {
  const r = await run('fstrim', ['-v', dir], { what: `trimming ${dir}` });
  return parseFstrim(String(r.stdout));
}

/** Turn a byte range of the exposed disk into a hole (falls back to a discard on a loop device). */
async function punch(file: string, offset: number, size: number): Promise<void> {
  const r = await run('fallocate', ['--punch-hole', '--keep-size', '-o', String(offset), '-l', String(size), file], {
    allowFailure: true,
  });
  if (r.exitCode === 0) return;
  const part = await attachPartition(file, offset, size);
  try {
    await run('blkdiscard', ['-f', part.device], { what: `discarding ${part.device}` });
  } finally {
    await part.detach();
  }
}

/** One place a filesystem or swap may live: a partition, the whole disk (partition 0), or an LV. */
interface Region {
  partition: number;
  /** An LV: its id and its bytes (start and size are then unused). */
  volume?: { id: string; ranges: DiskRange[] };
  start: number;
  size: number;
  fsType?: string;
  fsUuid?: string;
  fsLabel?: string;
  mountpoint?: string;
  container: boolean;
}

function regionsOf(d: InspectedDisk): Region[] {
  return [
    ...(d.wholeDiskFs
      ? [
          {
            partition: 0,
            start: 0,
            size: d.size,
            fsType: d.wholeDiskFs.fsType,
            fsUuid: d.wholeDiskFs.fsUuid,
            fsLabel: d.wholeDiskFs.fsLabel,
            mountpoint: d.wholeDiskFs.mountpoint,
            container: false,
          },
        ]
      : []),
    ...d.partitions.map((p) => ({
      partition: p.number,
      start: p.start,
      size: p.size,
      fsType: p.fsType,
      fsUuid: p.fsUuid,
      fsLabel: p.fsLabel,
      mountpoint: p.mountpoint,
      container: isContainerPartition(p),
    })),
  ];
}

export async function sparsify(
  inspection: Inspection,
  mount: GuestMount,
  disks: ExposedDisk[],
  opts: SparsifyOptions,
): Promise<SparsifyReport> {
  await requireProgram('fstrim');
  const { log } = opts;
  const report: SparsifyReport = { filesystems: [], swaps: [], warnings: [] };
  const warn = (m: string) => {
    report.warnings.push(m);
    log.warn(m);
  };
  const mounted = new Set(mount.mounts.map((m) => m.guestPath));
  const msg = (e: unknown) => (e instanceof Error ? e.message : String(e));

  const workDir = dirname(mount.root);
  const one = async (d: InspectedDisk, p: Region & { fsType: string }): Promise<void> => {
    const file = disks[d.index]!.path;
    const where = p.volume
      ? `LV ${p.volume.id}`
      : p.partition
        ? `${d.sourceName} partition ${p.partition}`
        : d.sourceName;
    const vol = p.volume ? { volume: p.volume.id } : {};
    const attach = (): Promise<AttachedPartition> =>
      p.volume
        ? attachVolume(
            { vg: '', name: '', id: p.volume.id, size: p.size, ranges: p.volume.ranges },
            disks.map((x) => x.path),
            workDir,
          )
        : attachPartition(file, p.start, p.size);
    if (p.mountpoint && mounted.has(p.mountpoint)) {
      const m = mount.mounts.find((x) => x.guestPath === p.mountpoint)!;
      let trimmed = 0;
      try {
        trimmed = await fstrim(m.mountpoint);
        log.info(`trimmed ${p.mountpoint} (${where}): ${(trimmed / 1048576).toFixed(1)} MiB`);
      } catch (e) {
        warn(`cannot trim ${p.mountpoint} (${where}): ${msg(e)}; its free space is copied`);
      }
      report.filesystems.push({
        disk: d.index,
        partition: p.partition,
        ...vol,
        guestPath: p.mountpoint,
        fsType: p.fsType,
        trimmedBytes: trimmed,
      });
    } else if (p.fsType === 'swap') {
      try {
        for (const r of p.volume?.ranges ?? [{ disk: d.index, offset: p.start, size: p.size }])
          await punch(disks[r.disk]!.path, r.offset, r.size);
        const part = await attach();
        try {
          await run(
            'mkswap',
            [...(p.fsUuid ? ['-U', p.fsUuid] : []), ...(p.fsLabel ? ['-L', p.fsLabel] : []), part.device],
            { what: `re-creating swap on ${where}` },
          );
        } finally {
          await part.detach();
        }
        report.swaps.push({
          disk: d.index,
          partition: p.partition,
          ...vol,
          uuid: p.fsUuid,
          label: p.fsLabel,
          bytes: p.size,
        });
        log.info(`swap on ${where} emptied and re-created with UUID ${p.fsUuid ?? '(new)'}`);
      } catch (e) {
        warn(`cannot empty the swap on ${where}: ${msg(e)}; it is copied whole`);
      }
    } else if (MOUNTABLE_FS.has(p.fsType)) {
      // Not mounted by the guest's fstab: mount it just for the trim.
      let trimmed = 0;
      const dir = await mkdtemp(join(workDir, 'p2v-trim-'));
      try {
        const part = await attach();
        try {
          const fs = await mountFilesystem(part.device, dir, p.fsType);
          try {
            trimmed = await fstrim(dir);
          } finally {
            await fs.unmount();
          }
        } finally {
          await part.detach();
        }
        log.info(`trimmed the ${p.fsType} filesystem on ${where}: ${(trimmed / 1048576).toFixed(1)} MiB`);
      } catch (e) {
        warn(`the ${p.fsType} filesystem on ${where} cannot be mounted or trimmed (${msg(e)}): it is copied whole`);
      } finally {
        await rmdir(dir).catch(() => undefined);
      }
      report.filesystems.push({
        disk: d.index,
        partition: p.partition,
        ...vol,
        fsType: p.fsType,
        trimmedBytes: trimmed,
      });
    } else if (p.fsType === 'vfat') {
      // The ESP is never mounted (guest/esp.ts): small, and copied whole on purpose.
      log.info(`the FAT filesystem on ${where} is copied whole (not mounted, so not trimmed)`);
    } else {
      warn(`the ${p.fsType} on ${where} cannot be mounted here: it is copied whole`);
    }
  };

  // Everything with a filesystem or swap and not a container (LVM, LUKS): each is one step of the progress count.
  const todo = inspection.disks.flatMap((d) =>
    regionsOf(d)
      .filter((p): p is Region & { fsType: string } => !p.container && !!p.fsType && p.fsType !== 'LVM2_member')
      .map((p) => ({ d, p })),
  );
  // LVM: each LV like a partition (on the disk of its first range), after the PV space no LV uses is punched.
  const groups = (inspection.volumeGroups ?? []).filter((g) => !g.asIs);
  for (const g of groups)
    for (const v of g.volumes) {
      if (!v.fsType) {
        warn(`LV ${v.id} holds no filesystem or swap we know: it is copied whole`);
        continue;
      }
      const first = v.ranges[0]!;
      const pv = g.pvs.find((x) => x.disk === first.disk)!;
      todo.push({
        d: inspection.disks[first.disk]!,
        p: {
          partition: pv?.partition ?? 0,
          volume: { id: v.id, ranges: v.ranges },
          start: first.offset,
          size: v.size,
          fsType: v.fsType,
          fsUuid: v.fsUuid,
          fsLabel: v.fsLabel,
          mountpoint: v.mountpoint,
          container: false,
        },
      });
    }
  if (groups.length) report.lvmFree = [];
  for (const g of groups) {
    let bytes = 0;
    for (const r of g.free) {
      try {
        await punch(disks[r.disk]!.path, r.offset, r.size);
        bytes += r.size;
      } catch (e) {
        warn(`cannot punch the unused extents of volume group ${g.name} on disk ${r.disk}: ${msg(e)}; they are copied`);
      }
    }
    report.lvmFree!.push({ vg: g.name, bytes });
    if (bytes) log.info(`volume group ${g.name}: ${(bytes / 1048576).toFixed(1)} MiB of unused extents punched`);
  }
  let handled = 0;
  opts.onProgress?.(0, todo.length);
  for (const { d, p } of todo) {
    await one(d, p);
    opts.onProgress?.(++handled, todo.length);
  }
  return report;
}
