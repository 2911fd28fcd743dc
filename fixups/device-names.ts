/**
 * Device names of the source machine (/dev/sda2, /dev/nvme0n1p1, by-path and
 * by-id links) mapped to stable names on the target: UUID= or LABEL= of the
 * filesystem the Inspection found there, and only when it has neither, the
 * name the target hypervisor gives the disk (vdX on kvm, xvdX on Xen).
 */
import type { InspectedDisk, Inspection } from '../exporter/types.js';
import type { HypervisorProfile } from './types.js';

export interface DeviceRef {
  /** Disk name as in InspectedDisk.sourceName ("sda", "nvme0n1", "cciss/c0d0"). */
  disk: string;
  /** Partition number; 0 for the whole disk. */
  partition: number;
}

const PATTERNS: {
  re: RegExp;
  disk: (m: RegExpExecArray) => string;
  part: (m: RegExpExecArray) => string | undefined;
}[] = [
  { re: /^\/dev\/((?:sd|hd|vd|xvd)[a-z]+)(\d*)$/, disk: (m) => m[1]!, part: (m) => m[2] },
  { re: /^\/dev\/((?:nvme\d+n\d+|mmcblk\d+))(?:p(\d+))?$/, disk: (m) => m[1]!, part: (m) => m[2] },
  { re: /^\/dev\/((?:cciss|ida|rd)\/c\d+d\d+)(?:p(\d+))?$/, disk: (m) => m[1]!, part: (m) => m[2] },
];

/** Parse a kernel device name; null when it is not a disk or partition name we know. */
export function parseDeviceName(dev: string): DeviceRef | null {
  for (const p of PATTERNS) {
    const m = p.re.exec(dev);
    if (m) return { disk: p.disk(m), partition: Number(p.part(m) || 0) };
  }
  return null;
}

/** Find the inspected disk and partition a device name refers to on the source. */
export function findDevice(inspection: Inspection, dev: string): { disk: InspectedDisk; partition: number } | null {
  const byLink = /^(\/dev\/disk\/by-(?:path|id)\/.+?)(?:-part(\d+))?$/.exec(dev);
  if (byLink) {
    const base = byLink[1]!;
    const disk = inspection.disks.find((d) => d.source === base || `/dev/disk/by-path/${d.sourceName}` === base);
    return disk ? { disk, partition: Number(byLink[2] ?? 0) } : null;
  }
  const ref = parseDeviceName(dev);
  if (!ref) return null;
  const disk = inspection.disks.find((d) => d.sourceName === ref.disk || d.source === `/dev/${ref.disk}`);
  return disk ? { disk, partition: ref.partition } : null;
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

/** The name the target hypervisor gives a disk (partition 0 = whole disk). */
export function hypervisorDeviceName(hv: HypervisorProfile, diskIndex: number, partition: number): string {
  const prefix = hv === 'kvm' ? 'vd' : 'xvd';
  return `/dev/${prefix}${diskLetters(diskIndex)}${partition > 0 ? partition : ''}`;
}

/**
 * The stable spelling for a source device name: UUID=, else LABEL= (when the
 * label needs no fstab escaping), else the hypervisor's device name. null when
 * the name does not refer to a disk the Inspection knows.
 */
export function stableDeviceName(inspection: Inspection, hv: HypervisorProfile, dev: string): string | null {
  const found = findDevice(inspection, dev);
  if (!found) return null;
  const { disk, partition } = found;
  const fs = partition === 0 ? disk.wholeDiskFs : disk.partitions.find((p) => p.number === partition);
  if (partition !== 0 && !fs) return null;
  if (fs?.fsUuid) return `UUID=${fs.fsUuid}`;
  if (fs?.fsLabel && /^[\w.+-]+$/.test(fs.fsLabel)) return `LABEL=${fs.fsLabel}`;
  return hypervisorDeviceName(hv, disk.index, partition);
}
