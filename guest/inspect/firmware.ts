/**
 * How the guest boots: UEFI (an EFI system partition with loaders), BIOS
 * (boot code in the MBR and GRUB's core where it belongs), both, or neither
 * found. Detection only: the ESP is listed with mtools (guest/esp.ts), the
 * MBR and the core's place are read as bytes, the guest's GRUB BIOS files
 * are looked up in the mounted tree. `--boot` decides from the result
 * (fixups/boot-mode.ts).
 *
 *   findBoot({ disks, read, tree, distro, warn }): Promise<InspectedBoot>
 */
import { posix } from 'node:path';
import { printable } from '../../lib/text.js';
import { EspFiles } from '../esp.js';
import type { GuestTree } from '../files.js';
import type { EfiBootloader, Firmware, InspectedBoot, InspectedDisk } from '../types.js';

export const GPT_ESP = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
export const GPT_BIOS_BOOT = '21686148-6449-6E6F-744E-656564454649';
/** The removable-media path a UEFI firmware starts when it has no boot entry (x86_64). */
export const FALLBACK_LOADER = '/EFI/BOOT/BOOTX64.EFI';
/** What the guest needs to be given a BIOS boot path (grub-pc-bin and grub-common inside the guest). */
export const GRUB_PC_FILES = {
  dir: '/usr/lib/grub/i386-pc',
  images: ['/usr/lib/grub/i386-pc/boot.img', '/usr/lib/grub/i386-pc/kernel.img'],
  mkimage: ['/usr/bin/grub-mkimage', '/bin/grub-mkimage'],
  // Debian keeps it beside the modules (grub-pc-bin); others in sbin.
  biosSetup: ['/usr/lib/grub/i386-pc/grub-bios-setup', '/usr/sbin/grub-bios-setup', '/sbin/grub-bios-setup'],
};

/** ESP directory names of each distribution's loaders, by os-release ID. */
const VENDOR_DIRS: Record<string, string[]> = {
  debian: ['debian'],
  ubuntu: ['ubuntu'],
  fedora: ['fedora'],
  rhel: ['redhat'],
  centos: ['centos', 'redhat'],
  rocky: ['rocky', 'redhat'],
  almalinux: ['almalinux', 'redhat'],
  ol: ['redhat'],
  opensuse: ['opensuse'],
  'opensuse-leap': ['opensuse'],
  sles: ['sles'],
};

export interface FindBootInput {
  disks: InspectedDisk[];
  /** The host file of each disk (an nbdfuse view of its overlay). */
  paths: string[];
  read: (disk: number, offset: number, length: number) => Promise<Buffer>;
  /** The mounted guest, to see whether it has GRUB's BIOS files; absent when no OS was found. */
  tree?: GuestTree;
  distro?: string;
  warn: (message: string) => void;
}

const nonZero = (b: Buffer) => b.some((x) => x !== 0);

/** The first FAT partition typed as an ESP, boot disk first. */
function findEsp(disks: InspectedDisk[]): InspectedBoot['esp'] {
  for (const d of disks)
    for (const p of d.partitions)
      if ((p.type.toUpperCase() === GPT_ESP || p.type.toLowerCase() === 'ef') && p.fsType === 'vfat')
        return { disk: d.index, partition: p.number, offset: p.start, size: p.size };
  return undefined;
}

/** Which loader the fallback path should start: the distribution's own directory first, shim before grub. */
export function chooseEfiBootloader(loaders: string[], distro: string | undefined): EfiBootloader | undefined {
  const byDir = new Map<string, string[]>();
  for (const l of loaders) {
    const dir = posix.dirname(l);
    byDir.set(dir, [...(byDir.get(dir) ?? []), l]);
  }
  const preferred = (VENDOR_DIRS[distro ?? ''] ?? [distro ?? '']).map((v) => `/efi/${v}`.toLowerCase());
  const dirs = [...byDir.keys()].sort((a, b) => {
    const rank = (d: string) => {
      const i = preferred.indexOf(d.toLowerCase());
      return i < 0 ? preferred.length : i;
    };
    return rank(a) - rank(b) || a.localeCompare(b);
  });
  const named = (dir: string, name: string) => byDir.get(dir)!.find((l) => posix.basename(l).toLowerCase() === name);
  for (const dir of dirs) {
    const shim = named(dir, 'shimx64.efi');
    const grub = named(dir, 'grubx64.efi');
    // shim starts grubx64.efi from its own directory: without it shim alone boots nothing.
    if (shim && grub) {
      const mm = named(dir, 'mmx64.efi');
      return { kind: 'shim', dir, loader: shim, companions: [grub, ...(mm ? [mm] : [])] };
    }
    if (grub) return { kind: 'grub', dir, loader: grub, companions: [] };
  }
  for (const dir of dirs) {
    const sd = named(dir, 'systemd-bootx64.efi');
    if (sd) return { kind: 'systemd-boot', dir, loader: sd, companions: [] };
  }
  return undefined;
}

async function anyFile(tree: GuestTree, paths: string[]): Promise<boolean> {
  for (const p of paths) if (await tree.isFile(p)) return true;
  return false;
}

export async function findBoot(input: FindBootInput): Promise<InspectedBoot> {
  const { disks, read, warn } = input;
  const boot: InspectedBoot = { firmware: 'unknown', efiLoaders: [], grubPc: false };

  const esp = findEsp(disks);
  if (esp) {
    boot.esp = esp;
    const files = new EspFiles(input.paths[esp.disk]!, esp.offset, esp.size);
    try {
      const entries = await files.list();
      boot.efiLoaders = entries
        .filter((e) => !e.dir && /^\/EFI\/[^/]+\/[^/]+\.efi$/i.test(e.path) && !/^\/EFI\/BOOT\//i.test(e.path))
        .map((e) => e.path)
        .sort();
      const fallback = await files.find(FALLBACK_LOADER);
      if (fallback) boot.fallbackLoader = fallback;
      const chosen = chooseEfiBootloader(boot.efiLoaders, input.distro);
      if (chosen) {
        // grub finds its configuration next to itself (signed images look in the directory they were started from).
        const cfg = await files.find(`${chosen.dir}/grub.cfg`);
        if (cfg && chosen.kind !== 'systemd-boot') chosen.companions.push(cfg);
        boot.efiBootloader = chosen;
      }
    } catch (e) {
      warn(
        `the EFI system partition (disk ${esp.disk} partition ${esp.partition}) cannot be read: ${printable((e as Error).message)}`,
      );
    }
  }

  // The BIOS side, on the boot disk only: the firmware boots disk 0's MBR.
  const d0 = disks[0];
  if (d0 && d0.partitionTable !== 'none') {
    const mbrCode = nonZero(await read(0, 0, 440));
    if (d0.partitionTable === 'gpt') {
      const bb = d0.partitions.find((p) => p.type.toUpperCase() === GPT_BIOS_BOOT);
      if (bb)
        boot.biosBoot = {
          kind: 'bios-boot-partition',
          partition: bb.number,
          offset: bb.start,
          size: bb.size,
          installed: mbrCode && nonZero(await read(0, bb.start, 512)),
        };
    } else {
      const first = Math.min(...d0.partitions.map((p) => p.start), d0.size);
      // An MBR loader may keep its second stage in a partition (a VBR) rather than in the gap: boot code is enough.
      boot.biosBoot = { kind: 'mbr-gap', offset: 512, size: Math.max(0, first - 512), installed: mbrCode };
    }
  }

  if (input.tree)
    boot.grubPc =
      (await input.tree.isDir(GRUB_PC_FILES.dir)) &&
      (await Promise.all(GRUB_PC_FILES.images.map((p) => input.tree!.isFile(p)))).every(Boolean) &&
      (await anyFile(input.tree, GRUB_PC_FILES.mkimage)) &&
      (await anyFile(input.tree, GRUB_PC_FILES.biosSetup));

  const efi = boot.efiLoaders.length > 0 || boot.fallbackLoader !== undefined;
  const bios = boot.biosBoot?.installed === true;
  const firmware: Firmware = efi && bios ? 'both' : efi ? 'uefi' : bios ? 'bios' : 'unknown';
  boot.firmware = firmware;
  return boot;
}
