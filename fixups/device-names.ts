/**
 * The target's spelling of a device the guest names by disk (/dev/sda2,
 * /dev/nvme0n1p1, /dev/cciss/c0d0p1, by-path and by-id links): UUID= or
 * LABEL= of the filesystem the Inspection found there, and only when it has
 * neither, the name the target hypervisor gives the disk (vdX on kvm, xvdX on
 * Xen). Which exported disk a guest disk name is comes from the Inspection's
 * device map (guest/device-map.ts), decided from the guest's own view; this
 * module detects nothing.
 */
import type { Inspection } from '../guest/types.js';
import { resolveDevice } from '../guest/device-map.js';
import { diskLetters } from '../guest/device-names.js';
import type { HypervisorProfile } from './types.js';

export { diskLetters };

/** The name the target hypervisor gives a disk (partition 0 = whole disk). */
export function hypervisorDeviceName(hv: HypervisorProfile, diskIndex: number, partition: number): string {
  const prefix = hv === 'kvm' ? 'vd' : 'xvd';
  return `/dev/${prefix}${diskLetters(diskIndex)}${partition > 0 ? partition : ''}`;
}

/**
 * The stable spelling for a device the guest names: UUID=, else LABEL= (when
 * the label needs no fstab escaping), else the hypervisor's device name.
 * Returns why not (a string) when the name is on no exported disk the device
 * map knows.
 */
export function stableDeviceName(
  inspection: Inspection,
  hv: HypervisorProfile,
  dev: string,
): { to: string } | { why: string } {
  if (!inspection.os) return { why: 'no operating system was inspected' };
  const found = resolveDevice(inspection.os.deviceMap, inspection.disks, dev);
  if (typeof found === 'string') return { why: found };
  const disk = inspection.disks.find((d) => d.index === found.disk)!;
  const fs = found.partition === 0 ? disk.wholeDiskFs : disk.partitions.find((p) => p.number === found.partition);
  if (fs?.fsUuid) return { to: `UUID=${fs.fsUuid}` };
  if (fs?.fsLabel && /^[\w.+-]+$/.test(fs.fsLabel)) return { to: `LABEL=${fs.fsLabel}` };
  return { to: hypervisorDeviceName(hv, disk.index, found.partition) };
}
