/**
 * The mount path: how the guest's filesystems become host directories, on
 * the loop devices of exporter/disk-files.ts (the overlay as host files).
 *
 *   DIR/disk ──losetup -o/--sizelimit──▶ /dev/loopN ──mount──▶ ROOT/…
 *
 * Every mount is registered with lib/exit-actions the moment it exists and is
 * torn down before the layers below it (unmount, detach, FUSE-unmount), so an
 * error or a signal at any step leaves no mount behind.
 *
 *   mountFilesystem(device, dir, fsType, { readOnly }): Promise<MountedFs>
 *   mountGuest(inspection, disks, workDir, { readOnly }): Promise<GuestMount>
 *
 * LVM logical volumes with a mountpoint are mounted like partitions; their
 * devices come from exporter/lvm/attach.ts (an offset loop, or an NBD view
 * for LVs of several segments).
 *
 * Guest paths (the fstab's mountpoints) are resolved with guest/files.ts, the
 * one rule that never leaves the guest root.
 */
import { lstat, mkdir, mkdtemp, rmdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { onExit } from '../lib/exit-actions.js';
import { run } from '../lib/run.js';
import { resolveGuestPath } from '../guest/files.js';
import type { InspectedVolume, Inspection } from '../guest/types.js';
import { attachVolume } from './lvm/attach.js';
import { attachPartition, unmountDir, type ExposedDisk } from './disk-files.js';

export interface MountedFs {
  device: string;
  dir: string;
  unmount(): Promise<void>;
}

export interface GuestMount {
  /** Host dir with the guest's /, and /boot, /usr … from its fstab mounted below it. */
  root: string;
  mounts: { device: string; mountpoint: string; guestPath: string; fsType: string }[];
  unmountAll(): Promise<void>;
}

/**
 * Filesystems we mount; everything else is left alone (and copied whole). FAT
 * is not among them: the ESP is read and written with mtools (guest/esp.ts),
 * never mounted, so a vfat cache can never write back over mtools' changes.
 */
export const MOUNTABLE_FS = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs']);

/**
 * Mount one filesystem. Read-only mounts still use a writable device below
 * (the overlay), so a dirty ext4/xfs journal is replayed into the overlay
 * rather than failing the mount, as libguestfs does on its own overlays.
 */
export async function mountFilesystem(
  device: string,
  dir: string,
  fsType: string,
  opts: { readOnly?: boolean; options?: string[] } = {},
): Promise<MountedFs> {
  const o = [...(opts.readOnly ? ['ro'] : []), ...(opts.options ?? [])];
  await run('mount', ['-t', fsType, ...(o.length ? ['-o', o.join(',')] : []), device, dir], {
    what: `mounting ${device} (${fsType}) on ${dir}`,
  });
  const h = onExit(`unmount ${dir}`, () => unmountDir(dir));
  return { device, dir, unmount: () => h.run() };
}

function depth(mountpoint: string): number {
  return mountpoint === '/' ? 0 : posix.normalize(mountpoint).split('/').filter(Boolean).length;
}

/** Mount the guest's filesystems as its fstab says (as recorded by inspection). */
export async function mountGuest(
  inspection: Inspection,
  disks: ExposedDisk[],
  workDir: string,
  // The caller's logger decides (--quiet, escaping); nothing here writes to stderr itself.
  opts: { readOnly?: boolean; warn: (msg: string) => void },
): Promise<GuestMount> {
  const warn = opts.warn;
  interface Want {
    disk: number;
    offset: number;
    size: number;
    fsType: string;
    mountpoint: string;
    what: string;
    /** An LVM logical volume (disk, offset and size unused): attached by exporter/lvm/attach.ts. */
    volume?: InspectedVolume;
  }
  const wants: Want[] = [];
  for (const d of inspection.disks) {
    const file = disks[d.index]?.path;
    if (!file)
      throw new P2vError('INSPECTION', `disk ${d.index} (${d.source}) is not exposed`, {
        hint: 'this is a bug: expose every inspected disk',
      });
    const consider = (
      fsType: string | undefined,
      mountpoint: string | undefined,
      offset: number,
      size: number,
      what: string,
    ) => {
      if (!mountpoint || !mountpoint.startsWith('/')) return;
      // The ESP (/boot/efi) is reached through mtools, not a mount: nothing to warn about.
      if (fsType === 'vfat') return;
      if (!fsType || !MOUNTABLE_FS.has(fsType)) {
        warn(`${what} (${fsType ?? 'unknown'}) for ${mountpoint} cannot be mounted here: it is copied as it is`);
        return;
      }
      wants.push({ disk: d.index, offset, size, fsType, mountpoint: posix.normalize(mountpoint), what });
    };
    if (d.wholeDiskFs) consider(d.wholeDiskFs.fsType, d.wholeDiskFs.mountpoint, 0, d.size, d.sourceName);
    for (const p of d.partitions)
      consider(p.fsType, p.mountpoint, p.start, p.size, `${d.sourceName} partition ${p.number}`);
  }
  for (const v of (inspection.volumeGroups ?? []).flatMap((g) => g.volumes)) {
    if (!v.mountpoint || !v.mountpoint.startsWith('/')) continue;
    if (!v.fsType || !MOUNTABLE_FS.has(v.fsType)) {
      warn(`LV ${v.id} (${v.fsType ?? 'unknown'}) for ${v.mountpoint} cannot be mounted here: it is copied as it is`);
      continue;
    }
    wants.push({
      disk: -1,
      offset: 0,
      size: v.size,
      fsType: v.fsType,
      mountpoint: posix.normalize(v.mountpoint),
      what: `LV ${v.id}`,
      volume: v,
    });
  }
  wants.sort((a, b) => depth(a.mountpoint) - depth(b.mountpoint) || a.mountpoint.localeCompare(b.mountpoint));
  if (!wants.some((w) => w.mountpoint === '/'))
    throw new P2vError('INSPECTION', 'the guest has no mountable root filesystem', {
      hint: 'run p2v-export --inspect to see what was found on the disks',
    });

  const root = await mkdtemp(join(workDir, 'p2v-root-'));
  const undo: (() => Promise<void>)[] = [];
  const removeRoot = onExit(`remove ${root}`, () => rmdir(root).catch(() => undefined));
  const mounts: GuestMount['mounts'] = [];
  let done = false;
  const unmountAll = async () => {
    if (done) return;
    done = true;
    let first: unknown;
    for (const u of undo.reverse()) {
      try {
        await u();
      } catch (e) {
        first ??= e;
      }
    }
    await removeRoot.run();
    if (first) throw first;
  };
  try {
    for (const w of wants) {
      // Symlinks in the mountpoint are followed inside the guest only; what is absent is created below root.
      const dir = w.mountpoint === '/' ? root : await resolveGuestPath(root, w.mountpoint);
      if (
        !(await lstat(dir).then(
          () => true,
          () => false,
        ))
      ) {
        if (opts.readOnly) {
          warn(`${w.mountpoint} does not exist in the guest: ${w.what} is not mounted`);
          continue;
        }
        await mkdir(dir, { recursive: true });
      }
      if (!dir.startsWith(root))
        throw new P2vError('INSPECTION', `mount point ${w.mountpoint} escapes the guest root`, {});
      const part = w.volume
        ? await attachVolume(
            w.volume,
            disks.map((d) => d.path),
            workDir,
          )
        : await attachPartition(disks[w.disk]!.path, w.offset, w.size);
      undo.push(part.detach);
      const fs = await mountFilesystem(part.device, dir, w.fsType, { readOnly: opts.readOnly });
      undo.push(fs.unmount);
      mounts.push({ device: part.device, mountpoint: dir, guestPath: w.mountpoint, fsType: w.fsType });
    }
  } catch (e) {
    await unmountAll().catch(() => undefined);
    throw e;
  }
  return { root, mounts, unmountAll };
}
