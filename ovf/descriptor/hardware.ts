/**
 * How disk controllers and NICs are spelled in VirtualHardwareSection Items,
 * in both directions. One table so that what we write is what we read back.
 */
import type { DiskController } from '../types.js';
import { RESOURCE_TYPE } from './namespaces.js';

export interface ControllerSpelling {
  resourceType: number;
  /** rasd:ResourceSubType we write; absent when producers leave it out. */
  subType?: string;
  elementName: string;
}

/**
 * virtio has no CIM ResourceType of its own: it is written as "Other" with
 * ResourceSubType "virtio", which Ganeti and virt-v2v ignore and VMware and
 * VirtualBox reject (they have no virtio controller to map it to).
 */
export const CONTROLLER: Readonly<Record<DiskController, ControllerSpelling>> = {
  ide: { resourceType: RESOURCE_TYPE.ideController, elementName: 'IDE Controller 0' },
  scsi: { resourceType: RESOURCE_TYPE.parallelScsiHba, subType: 'lsilogic', elementName: 'SCSI Controller 0' },
  sata: { resourceType: RESOURCE_TYPE.sataController, subType: 'AHCI', elementName: 'SATA Controller 0' },
  virtio: { resourceType: RESOURCE_TYPE.other, subType: 'virtio', elementName: 'VirtIO Controller 0' },
};

/** The controller kind an Item describes, or undefined when it is not a disk controller. */
export function controllerOf(resourceType: number, subType: string | undefined): DiskController | undefined {
  switch (resourceType) {
    case RESOURCE_TYPE.ideController:
      return 'ide';
    case RESOURCE_TYPE.parallelScsiHba:
      // VMware's paravirtual SCSI and lsilogic alike are SCSI to the guest; only "virtio-scsi"-style names say otherwise.
      return 'scsi';
    case RESOURCE_TYPE.sataController:
      return 'sata';
    case RESOURCE_TYPE.other:
      return subType !== undefined && /^virtio/i.test(subType) ? 'virtio' : undefined;
    default:
      return undefined;
  }
}

/** A disk whose Item names no controller we know sits on IDE, which every hypervisor emulates. */
export const DEFAULT_CONTROLLER: DiskController = 'ide';

const MAC_COLON = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/** "AA-00-00-D8-2C-1E", "aa0000d82c1e", "aa:00:00:d8:2c:1e" → "aa:00:00:d8:2c:1e"; undefined when not a MAC. */
export function normaliseMac(text: string): string | undefined {
  const t = text.trim().toLowerCase();
  if (MAC_COLON.test(t)) return t;
  if (/^[0-9a-f]{2}(?:-[0-9a-f]{2}){5}$/.test(t)) return t.replaceAll('-', ':');
  if (/^[0-9a-f]{12}$/.test(t)) return t.match(/../g)!.join(':');
  return undefined;
}
