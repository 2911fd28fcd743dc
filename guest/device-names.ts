/**
 * Device names as a Linux guest writes them (fstab, crypttab, root= and
 * resume= on its kernel command line, --map-device): the one parser of kernel
 * and udev device names in the project.
 *
 * A name either points at a filesystem or partition by identity (UUID=,
 * LABEL=, PARTUUID=, PARTLABEL= and their /dev/disk/by-* links), which the
 * Inspection can look up directly, or at a *guest disk* plus a partition
 * number (/dev/sda1, /dev/nvme0n1p2, /dev/cciss/c0d0p1, /dev/disk/by-id/…-part1),
 * whose disk only the device map (device-map.ts) can tie to an exported disk:
 * the kernel gave those names on the old machine, and they say nothing about
 * the names the live system or the target give the same disk.
 *
 *   parseDeviceSpec(spec): DeviceSpec | null
 *   parseGuestDisk(name): string              — the disk key of a whole-disk name ("sda", "cciss/c0d0")
 *   parseMapDevice(arg): DeviceMapping         — one --map-device GUEST=INDEX
 *   guestDiskPath(key): string                 — "/dev/sda" for messages and hints
 *   diskLetters(index): string                 — 0 → a, 26 → aa
 */
import { P2vError } from '../lib/errors.js';

/** A guest disk (by its key: "sda", "nvme0n1", "cciss/c0d0", "disk/by-id/ata-X") and a partition (0 = whole disk). */
export interface GuestDiskSpec {
  kind: 'disk';
  disk: string;
  partition: number;
  /** A kernel name (sdX, nvmeXnY, …) rather than a by-id/by-path link; kernel names are one per disk. */
  kernel: boolean;
}

/** A filesystem or partition named by its identity; `value` is unescaped. */
export interface IdentitySpec {
  kind: 'identity';
  key: 'UUID' | 'LABEL' | 'PARTUUID' | 'PARTLABEL';
  value: string;
}

/**
 * Block devices that move as they are and are never renamed: LVM, device-mapper
 * and MD names (the guest's own kernel assembles them), and removable drives
 * (sr0, fd0) that are not exported.
 */
export interface StableSpec {
  kind: 'stable';
  why: 'lvm-md' | 'removable';
}

export type DeviceSpec = GuestDiskSpec | IdentitySpec | StableSpec;

/** One --map-device: the guest's disk key and the index of the exported disk (--disk order, from 0). */
export interface DeviceMapping {
  guestDisk: string;
  index: number;
}

/** Kernel disk names with their partition suffix: [regexp, disk group, partition group]. */
const KERNEL_NAMES: RegExp[] = [
  // SCSI/SATA/USB, old IDE, virtio, Xen: sda1, hdb, vdc3, xvda1, sdaa12.
  /^((?:sd|hd|vd|xvd)[a-z]{1,3})(\d*)$/,
  // NVMe namespaces and MMC/SD cards: nvme0n1p2, mmcblk0p1.
  /^(nvme\d+n\d+|mmcblk\d+)(?:p(\d+))?$/,
  // HP Smart Array (cciss, ida) and Mylex (rd) controllers: cciss/c0d0p1.
  /^((?:cciss|ida|rd)\/c\d+d\d+)(?:p(\d+))?$/,
];

/** udev's \xHH escapes in /dev/disk/by-label and by-partlabel link names. */
function unhex(s: string): string {
  return s.replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

const unquote = (s: string) => (s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s);

/** A kernel name without /dev/ ("sda1", "cciss/c0d0p2"), or null. */
function parseKernelName(name: string): { disk: string; partition: number } | null {
  for (const re of KERNEL_NAMES) {
    const m = re.exec(name);
    if (m) return { disk: m[1]!, partition: Number(m[2] || 0) };
  }
  return null;
}

/**
 * What a device spec names; null when it names no local block device (proc,
 * tmpfs, host:/export, a swap file, RESUME=none, a name we do not know).
 */
export function parseDeviceSpec(spec: string): DeviceSpec | null {
  let m: RegExpExecArray | null;
  if ((m = /^(UUID|LABEL|PARTUUID|PARTLABEL)=(.+)$/.exec(spec)))
    return { kind: 'identity', key: m[1] as IdentitySpec['key'], value: unquote(m[2]!) };
  if ((m = /^\/dev\/disk\/by-(uuid|label|partuuid|partlabel)\/(.+)$/.exec(spec)))
    return { kind: 'identity', key: m[1]!.toUpperCase() as IdentitySpec['key'], value: unhex(m[2]!) };
  if ((m = /^\/dev\/(disk\/by-(?:id|path)\/.+?)(?:-part(\d+))?$/.exec(spec)))
    return { kind: 'disk', disk: m[1]!, partition: Number(m[2] ?? 0), kernel: false };
  if (!spec.startsWith('/dev/')) return null;
  const name = spec.slice('/dev/'.length);
  const k = parseKernelName(name);
  if (k) return { kind: 'disk', ...k, kernel: true };
  if (/^(mapper\/|dm-\d|md\d|md\/)/.test(name) || /^[\w.+-]+\/[\w.+-]+$/.test(name))
    return { kind: 'stable', why: 'lvm-md' };
  if (/^(sr\d+|scd\d+|cdrom|dvd|fd\d+)$/.test(name)) return { kind: 'stable', why: 'removable' };
  return null;
}

/** The disk key of a whole-disk name as a user writes it: /dev/sda, sda, /dev/disk/by-id/X, cciss/c0d0. */
export function parseGuestDisk(name: string): string {
  const spec = parseDeviceSpec(name.startsWith('/dev/') ? name : `/dev/${name}`);
  if (!spec || spec.kind !== 'disk')
    throw new P2vError('USAGE', `--map-device: ${JSON.stringify(name)} is not a disk name the guest could use`, {
      hint: 'name the disk as the guest does, e.g. /dev/sda, /dev/nvme0n1, /dev/cciss/c0d0 or /dev/disk/by-id/…',
    });
  if (spec.partition !== 0)
    throw new P2vError('USAGE', `--map-device: ${name} is a partition, not a disk`, {
      hint: `name the whole disk, e.g. ${guestDiskPath(spec.disk)}`,
    });
  return spec.disk;
}

/** One --map-device GUEST=INDEX argument. */
export function parseMapDevice(arg: string): DeviceMapping {
  const m = /^(.+)=(\d{1,4})$/.exec(arg);
  if (!m)
    throw new P2vError('USAGE', `--map-device ${JSON.stringify(arg)}: expected GUESTDISK=INDEX`, {
      hint: 'e.g. --map-device /dev/sda=0 (INDEX is the position of the disk in --disk, from 0)',
    });
  return { guestDisk: parseGuestDisk(m[1]!), index: Number(m[2]) };
}

/** The guest's path of a disk key, for messages and hints. */
export function guestDiskPath(key: string): string {
  return `/dev/${key}`;
}

/** Disk name letters: 0 → a, 25 → z, 26 → aa (as the kernel names them). */
export function diskLetters(index: number): string {
  let s = '';
  let n = index + 1;
  while (n > 0) {
    n--;
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26);
  }
  return s;
}
