/**
 * Inspection: what is known about the guest on the source disks, as plain
 * data. It is produced once (guest/inspect, run by exporter/inspect.ts with
 * the live machine's description), printed by `p2v-export --inspect`, given to
 * fixups (which never detect anything themselves) and to site hooks as JSON.
 */
import type { GuestDeviceMap } from './device-map.js';

export type PartitionTableType = 'dos' | 'gpt' | 'none';

export interface InspectedPartition {
  /** 1-based partition number as in the table. */
  number: number;
  /** Byte offset and size within the disk. */
  start: number;
  size: number;
  /** MBR type byte ("83", "82", "ee") or GPT type GUID. */
  type: string;
  /** GPT partition UUID or the MBR "disk-id-NN" PARTUUID. */
  partUuid?: string;
  /** GPT partition name (PARTLABEL=). */
  partLabel?: string;
  bootable?: boolean;
  /** blkid TYPE: "ext4", "xfs", "swap", "vfat", "LVM2_member", …; undefined when blkid found nothing. */
  fsType?: string;
  fsUuid?: string;
  fsLabel?: string;
  /** Where the guest's fstab mounts it ("/", "/boot", "swap"), if it does. */
  mountpoint?: string;
}

export interface InspectedDisk {
  /** Index in --disk order (0 = first disk, the boot disk). */
  index: number;
  /** What the user named: /dev/sda or an image file. */
  source: string;
  /**
   * The LIVE system's name of the disk (loop0, sdb, nvme0n1; for an image file
   * sd<letter> by position), for messages only. It says nothing about the name
   * the guest gave the disk: that is `InspectedOs.deviceMap`.
   */
  sourceName: string;
  /** by-id/by-path links the live system has for this device ("disk/by-id/ata-X"): they name the hardware. */
  hardwareLinks?: string[];
  size: number;
  partitionTable: PartitionTableType;
  /** MBR disk identifier or GPT disk GUID. */
  diskId?: string;
  partitions: InspectedPartition[];
  /**
   * The smallest size this disk can be exported at (p2v-export --target-size
   * auto): measured by `--inspect` on its filesystems; absent otherwise.
   */
  minimumSize?: number;
  /** A disk with no partition table but a filesystem on the whole device. */
  wholeDiskFs?: { fsType: string; fsUuid?: string; fsLabel?: string; mountpoint?: string };
}

export interface InspectedKernel {
  /** "6.1.0-18-amd64". */
  version: string;
  /** Guest paths ("/boot/vmlinuz-…", "/boot/initrd.img-…"). */
  vmlinuz: string;
  initrd?: string;
  /** Module directory present (/lib/modules/VERSION). */
  hasModules: boolean;
  /**
   * What the initramfs image holds, read as the kernel unpacks it
   * (guest/initramfs.ts): the kernel module names inside ("virtio_blk",
   * '-' written '_'), or why it could not be read. Absent when there is no
   * image.
   */
  initrdContent?:
    | { modules: string[]; /** It holds the lvm tool (activates LVM volumes at boot). */ lvm?: boolean }
    | { error: string };
}

export type InitramfsTool = 'initramfs-tools' | 'dracut' | 'mkinitrd' | 'unknown';
export type Bootloader = 'grub2' | 'grub-legacy' | 'extlinux' | 'systemd-boot' | 'unknown';
export type InitSystem = 'systemd' | 'sysvinit' | 'upstart' | 'unknown';
export type NetworkConfigSystem = 'ifupdown' | 'netplan' | 'networkmanager' | 'ifcfg' | 'systemd-networkd';

export interface InspectedOs {
  /** os-release ID: "debian", "ubuntu", "rhel", "centos", "rocky", "fedora", … */
  distro: string;
  /** os-release ID_LIKE entries. */
  distroLike: string[];
  /** os-release VERSION_ID. */
  version: string;
  prettyName: string;
  hostname?: string;
  arch: string;
  kernels: InspectedKernel[];
  initramfsTool: InitramfsTool;
  bootloader: Bootloader;
  /** Grub config paths found (guest paths), e.g. "/boot/grub/grub.cfg". */
  grubConfigs: string[];
  /** BLS entry directory when present (/boot/loader/entries). */
  blsEntries: boolean;
  initSystem: InitSystem;
  /** Network configuration systems found in use, most important first. */
  networkConfig: NetworkConfigSystem[];
  /**
   * Which (disk, partition) holds / ; partition 0 means the whole disk. On LVM
   * the partition is the PV holding the LV's first extent and `volume` names
   * the LV ("vg/lv").
   */
  root: { disk: number; partition: number; volume?: string };
  /**
   * Which exported disk each disk name of the guest (sda, nvme0n1, cciss/c0d0)
   * is, from the guest's own fstab, crypttab and kernel command lines
   * (guest/device-map.ts). Fixups rename devices through it only.
   */
  deviceMap: GuestDeviceMap;
}

/**
 * The source machine as the live system sees it: vCPUs, memory, NIC MACs. Not
 * guest knowledge (exporter/live-machine.ts probes it, or the user gives it):
 * inspection carries it along so the descriptor and the fixups see one record.
 */
export interface MachineFacts {
  cpus: number;
  memoryMiB: number;
  nics: { name: string; mac: string }[];
}

/** Bytes [offset, offset+size) of exported disk `disk`. */
export interface DiskRange {
  disk: number;
  offset: number;
  size: number;
}

/** One LVM logical volume, read from the VG's metadata on its PVs (guest/lvm). */
export interface InspectedVolume {
  vg: string;
  name: string;
  /** "vg/lv", as root.volume and messages name it. */
  id: string;
  size: number;
  /** Where its bytes are, in LV order: one range for a linear LV of one segment. */
  ranges: DiskRange[];
  fsType?: string;
  fsUuid?: string;
  fsLabel?: string;
  /** Where the guest's fstab mounts it ("/", "/home", "swap"), if it does. */
  mountpoint?: string;
}

export interface InspectedVolumeGroup {
  name: string;
  uuid: string;
  /** Bytes per extent. */
  extentSize: number;
  /** Each PV: where it is and where its extent 0 starts on that disk. */
  pvs: { uuid: string; disk: number; partition: number; firstExtent: number; extents: number }[];
  /** Its logical volumes; empty when the VG is copied untouched. */
  volumes: InspectedVolume[];
  /** PV extents no LV uses: punched as holes, never sent. */
  free: DiskRange[];
  /** Set when the VG is copied untouched (--lvm-as-is): why. */
  asIs?: string;
}

/**
 * How the guest boots, read from its disks (guest/inspect/firmware.ts):
 * an EFI system partition with loaders, and/or a BIOS boot path (boot code
 * in the MBR with GRUB's core where it belongs). `p2v-export --boot` decides
 * from it (fixups/boot-mode.ts).
 *
 *   uefi     an ESP with at least one loader, no BIOS boot path
 *   bios     a BIOS boot path, no ESP loader
 *   both     both (a hybrid image, or a machine installed in one mode and prepared for the other)
 *   unknown  neither was found
 */
export type Firmware = 'uefi' | 'bios' | 'both' | 'unknown';

/** The loader the removable-media fallback path should start, from the guest's own files on the ESP. */
export interface EfiBootloader {
  kind: 'shim' | 'grub' | 'systemd-boot';
  /** The ESP directory it lives in: "/EFI/debian". */
  dir: string;
  /** The file the firmware starts: "/EFI/debian/shimx64.efi". */
  loader: string;
  /** The files that must sit beside it (shim's grubx64.efi and mmx64.efi, grub's grub.cfg). */
  companions: string[];
}

export interface InspectedBoot {
  firmware: Firmware;
  /** The EFI system partition (GPT type C12A7328-…, MBR type ef) holding a FAT filesystem; on the boot disk first. */
  esp?: { disk: number; partition: number; offset: number; size: number };
  /** Every *.efi under /EFI/<vendor>/ on the ESP (not /EFI/BOOT): "/EFI/debian/shimx64.efi". */
  efiLoaders: string[];
  /** The removable-media path, when present: "/EFI/BOOT/BOOTX64.EFI" as the ESP spells it. */
  fallbackLoader?: string;
  /** What the fallback path should start; absent when no loader fits (then --boot uefi is refused). */
  efiBootloader?: EfiBootloader;
  /**
   * Where GRUB's BIOS core can live on the boot disk (disk 0), whether or not
   * it is there now: a BIOS boot partition (GPT, type 21686148-…) or the gap
   * between the MBR and the first partition (MBR tables).
   */
  biosBoot?: {
    kind: 'bios-boot-partition' | 'mbr-gap';
    /** The BIOS boot partition's number (GPT). */
    partition?: number;
    offset: number;
    /** Bytes available for core.img. */
    size: number;
    /** Boot code in the MBR and a core where it belongs: the disk boots with BIOS now. */
    installed: boolean;
  };
  /** The guest has GRUB's BIOS modules (/usr/lib/grub/i386-pc, grub-pc-bin) and grub-mkimage: it can be given a BIOS boot path. */
  grubPc: boolean;
}

/** Everything inspection learned. `os` is absent for data-only disks. */
export interface Inspection {
  disks: InspectedDisk[];
  /** LVM volume groups found on the disks' PVs (absent: none). */
  volumeGroups?: InspectedVolumeGroup[];
  os?: InspectedOs;
  /** How the guest boots (absent for data-only disks). */
  boot?: InspectedBoot;
  machine: MachineFacts;
  /** Non-fatal findings, e.g. "filesystem on sda3 cannot be mounted: copied whole". */
  warnings: string[];
}
