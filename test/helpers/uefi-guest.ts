/**
 * The UEFI test guest of the slow suite: a Debian bookworm machine installed
 * for UEFI firmware, from the cached image of debian-image.ts with
 * `firmware: 'uefi'` (GPT; p1 an ESP, FAT32, mounted at /boot/efi by UUID,
 * holding only \EFI\debian\grubx64.efi; p2 the ext4 root; linux-image-amd64,
 * grub-efi-amd64 and grub-pc-bin installed; console on ttyS0; DHCP on every
 * Ethernet interface by systemd-networkd). That image is derived from the
 * same cached BIOS image as debian-machine.ts and lvm-guest.ts, so the suite
 * runs one debootstrap for all of them.
 *
 *   buildUefiMachine(dir): Promise<UefiMachine>        a private copy, hostname `uefiphys`
 *   withFirmwareEntryStandIn(machine, dest): Promise<string>
 *   withBiosBootPartition(machine, dest): Promise<string>
 *   espFiles(disk, espOffset): Promise<string[]>       every file on the ESP (mtools)
 *
 * Like an installed machine, the disk has no /EFI/BOOT/BOOTX64.EFI: it boots
 * through the firmware's NVRAM entry for \EFI\debian\grubx64.efi, which a
 * fresh OVMF does not have. withFirmwareEntryStandIn makes a copy whose ESP
 * also has a startup.nsh running that loader from OVMF's UEFI shell, the
 * stand-in for the entry: only that copy, never the export source.
 */
import { rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { copyImage, debianImage, SHARED_MACHINE_SPEC, type EspInfo } from './debian-image.js';
import { needPrograms } from './programs.js';

export const PHYS_HOSTNAME = 'uefiphys';
/** GPT type of a BIOS boot partition (GRUB for BIOS keeps its core there on a GPT disk). */
export const BIOS_BOOT_TYPE = '21686148-6449-6E6F-744E-656564454649';
const MiB = 1024 * 1024;

export interface UefiMachine {
  /** The private copy: the physical machine's disk. */
  path: string;
  size: number;
  kernelRelease: string;
  rootUuid: string;
  rootOffset: number;
  rootSize: number;
  esp: EspInfo;
}

/** `mdir -b` of the whole ESP: every path on it, lower case, with / separators (e.g. /efi/debian/grubx64.efi). */
export async function espFiles(disk: string, espOffset: number): Promise<string[]> {
  await needPrograms('mdir');
  const r = await execa('mdir', ['-/', '-b', '-i', `${disk}@@${espOffset}`, '::/']);
  return String(r.stdout)
    .split('\n')
    .map((l) => l.trim().replace(/^::/, '').toLowerCase())
    .filter((l) => l && !l.endsWith('/'));
}

/** Copy the cached UEFI image to `dir` and give it its hostname. */
export async function buildUefiMachine(dir: string): Promise<UefiMachine> {
  await needPrograms('losetup', 'mount', 'mkfs.fat', 'mdir', 'mcopy', 'grub-mkimage');
  // The same packages and hostname as debian-machine.ts's base image: one BIOS image to derive from.
  const img = await debianImage({
    ...SHARED_MACHINE_SPEC,
    packages: [...SHARED_MACHINE_SPEC.packages],
    firmware: 'uefi',
  });
  if (!img.esp || !img.kernelRelease) throw new Error(`the cached image ${img.path} is not a UEFI image with a kernel`);
  const path = await copyImage(img, join(dir, 'uefi-source.img'));
  const { withMount, withOffsetLoop } = await import('../e2e/support.js');
  await withOffsetLoop(path, img.partitionOffset, img.partitionBytes, (dev) =>
    withMount(dev, join(dir, 'uefi-build-mnt'), async (root) => {
      await writeFile(join(root, 'etc/hostname'), `${PHYS_HOSTNAME}\n`);
      await writeFile(
        join(root, 'etc/hosts'),
        `127.0.0.1\tlocalhost\n127.0.1.1\t${PHYS_HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
      );
    }),
  );
  await rm(join(dir, 'uefi-build-mnt'), { recursive: true, force: true });
  return {
    path,
    size: (await stat(path)).size,
    kernelRelease: img.kernelRelease,
    rootUuid: img.rootUuid,
    rootOffset: img.partitionOffset,
    rootSize: img.partitionBytes,
    esp: img.esp,
  };
}

/**
 * A copy of the machine's disk at `dest` whose ESP has a startup.nsh that
 * OVMF's UEFI shell runs when no boot option works: it starts the loader the
 * NVRAM entry names (fs0: is the ESP, the only FAT on the machine).
 */
export async function withFirmwareEntryStandIn(m: UefiMachine, dest: string): Promise<string> {
  await execa('cp', ['--sparse=always', m.path, dest]);
  const nsh = `${dest}.startup.nsh`;
  await writeFile(nsh, `fs0:${m.esp.loader}\r\n`);
  await execa('mcopy', ['-i', `${dest}@@${m.esp.offset}`, nsh, '::/startup.nsh']);
  await rm(nsh);
  return dest;
}

/**
 * A copy of the machine's disk at `dest` with a 1 MiB BIOS boot partition
 * (partition 3) appended in the free MiB the layout leaves before the GPT
 * backup: what an admin adds on the source before a `--boot bios` export of
 * a GPT disk (p2v-export does not repartition).
 */
export async function withBiosBootPartition(m: UefiMachine, dest: string): Promise<string> {
  await needPrograms('sfdisk');
  await execa('cp', ['--sparse=always', m.path, dest]);
  const start = m.rootOffset + m.rootSize;
  if (start + MiB > m.size - 33 * 512)
    throw new Error(`${m.path}: no free MiB after the root for a BIOS boot partition`);
  await execa('sfdisk', ['--quiet', '--append', '--no-reread', '--no-tell-kernel', dest], {
    input: `start=${start / 512}, size=${MiB / 512}, type=${BIOS_BOOT_TYPE}\n`,
  });
  return dest;
}
