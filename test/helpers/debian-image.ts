/**
 * DebianImage: a real Debian disk image built with debootstrap, for the slow
 * tests that boot guests under qemu. Building one takes minutes, so it is
 * built once into a cache directory (P2V_CACHE_DIR, default /var/tmp/p2v-cache)
 * under a name keyed by a hash of everything that goes into it; later runs
 * reuse it. Tests must never write to the cached file: copy it with
 * `copyImage` first (sparse, so a copy costs only the used blocks).
 *
 *   const img = await debianImage({ packages: ['openssh-server'] });
 *   img.path        raw image: MBR, one ext4 partition (the root), GRUB in
 *                   the MBR when `kernel` is set
 *   img.rootUuid    the ext4 UUID (root=UUID=… on a kernel command line)
 *   img.sshKey      private key whose public half is root's authorized_keys
 *
 * Layout and choices:
 *   - one primary partition at 1 MiB, bootable, ext4 with a fixed UUID derived
 *     from the hash (a rebuild gives the same UUID);
 *   - root's password is locked; root logs in over SSH by key only;
 *   - systemd-networkd brings up every Ethernet interface with DHCP, so qemu's
 *     user network (and a Ganeti NIC) works without knowing the NIC's name;
 *   - the serial console (ttyS0) gets a getty through the kernel command line;
 *   - with `kernel: true`, linux-image-amd64 is installed in the guest and GRUB
 *     goes into the MBR (see installGrub for how, without partition devices);
 *   - with `firmware: 'uefi'` (and `kernel: true`), the same machine laid out
 *     as a UEFI install instead: GPT, an EFI System Partition (FAT32) mounted
 *     at /boot/efi by UUID, the ext4 root, grub-efi-amd64 with its loader at
 *     /EFI/debian/grubx64.efi on the ESP (see buildUefiImage). It is derived
 *     from the BIOS image of the same spec, so both share one debootstrap.
 *
 * The image builder needs root (loop devices, mount, chroot), debootstrap and
 * network access to the Debian mirror (P2V_DEBIAN_MIRROR, default
 * http://deb.debian.org/debian).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { needPrograms, needRoot } from './programs.js';

export interface DebianImageSpec {
  /** Debian suite; the tests use bookworm (the release of the build hosts). */
  suite?: string;
  /** Image size in MiB (default 2048; the root uses what debootstrap writes). */
  sizeMiB?: number;
  /** Extra packages on top of systemd, udev, openssh-server, iproute2. */
  packages?: string[];
  /** Install linux-image-amd64 and GRUB so the image boots on its own. */
  kernel?: boolean;
  /** Host name written to /etc/hostname. */
  hostname?: string;
  /**
   * 'bios' (default): MBR, GRUB in the MBR. 'uefi': GPT with an ESP and the
   * root, grub-efi-amd64 (grub-pc-bin stays installed too); needs `kernel`.
   */
  firmware?: 'bios' | 'uefi';
}

/** The EFI System Partition of a `firmware: 'uefi'` image. */
export interface EspInfo {
  /** Byte offset and size of the ESP inside the image (partition 1). */
  offset: number;
  bytes: number;
  /** FAT volume id as blkid and fstab spell it (XXXX-XXXX). */
  uuid: string;
  /** The loader on the ESP, as the firmware's boot entry names it (\EFI\debian\grubx64.efi). */
  loader: string;
}

export interface DebianImage {
  path: string;
  rootUuid: string;
  /** Byte offset and size of the root partition inside the image. */
  partitionOffset: number;
  partitionBytes: number;
  /** Private key (ed25519, no passphrase) accepted for root over SSH. */
  sshKey: string;
  /** Kernel release installed in the guest, when `kernel` was set. */
  kernelRelease?: string;
  /** Set for `firmware: 'uefi'` images (the root is then partition 2). */
  esp?: EspInfo;
}

/** Bumped whenever the build steps change, so stale cache entries are not reused. */
const BUILDER_VERSION = 3;
/** Bumped whenever the UEFI layout steps change (keyed only into UEFI images, so BIOS ones stay cached). */
const UEFI_BUILDER_VERSION = 2;
const MiB = 1024 * 1024;
const PART_OFFSET = MiB;
/**
 * UEFI layout: the ESP from 1 MiB, the root right after it, 2 MiB left free at the end: GPT's backup, and
 * room for the 1 MiB BIOS boot partition an admin adds before a `--boot bios` export (uefi-boot.slow.test.ts).
 */
const ESP_MiB = 128;
export const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const LINUX_FS_TYPE = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

export function cacheDir(): string {
  return process.env.P2V_CACHE_DIR ?? '/var/tmp/p2v-cache';
}

function uuidFrom(hash: string): string {
  const h = hash.slice(0, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

async function sh(cmd: string, args: string[], opts: { env?: Record<string, string>; input?: string } = {}) {
  return execa(cmd, args, { env: opts.env, input: opts.input, stripFinalNewline: true });
}

/**
 * The bootable machine the slow tests share (debian-machine, lvm-guest, the
 * UEFI guest derived from it, the builder's own boot test): one spec, so one
 * debootstrap per cache.
 */
export const SHARED_MACHINE_SPEC = {
  kernel: true,
  packages: ['ifupdown', 'lvm2'],
  hostname: 'oldhost',
} as const satisfies DebianImageSpec;

/** The cached image for `spec`, building it first when there is none. */
export async function debianImage(spec: DebianImageSpec = {}): Promise<DebianImage> {
  const full = {
    suite: spec.suite ?? 'bookworm',
    sizeMiB: spec.sizeMiB ?? 2048,
    packages: [...(spec.packages ?? [])].sort(),
    kernel: spec.kernel ?? false,
    hostname: spec.hostname ?? 'p2v-test',
    mirror: process.env.P2V_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian',
    v: BUILDER_VERSION,
    // Only UEFI images carry these in their key: the BIOS images' keys (and cache entries) stay as they were.
    ...(spec.firmware === 'uefi' ? { firmware: 'uefi' as const, uefiV: UEFI_BUILDER_VERSION } : {}),
  };
  if (full.firmware === 'uefi' && !full.kernel) throw new Error("debianImage: firmware 'uefi' needs kernel: true");
  const hash = createHash('sha256').update(JSON.stringify(full)).digest('hex');
  const dir = cacheDir();
  await mkdir(dir, { recursive: true });
  const base = join(dir, `debian-${full.suite}${full.firmware === 'uefi' ? '-uefi' : ''}-${hash.slice(0, 16)}`);
  const meta = `${base}.json`;
  if (existsSync(meta)) return JSON.parse(await readFile(meta, 'utf8')) as DebianImage;

  needRoot();
  await needPrograms('debootstrap', 'sfdisk', 'losetup', 'mkfs.ext4', 'mount', 'umount', 'ssh-keygen');
  if (full.firmware === 'uefi') await needPrograms('mkfs.fat', 'mmd', 'mcopy');
  // One builder at a time per image: other test files wait for it, then reuse it.
  await takeLock(`${base}.lock`);
  try {
    if (existsSync(meta)) return JSON.parse(await readFile(meta, 'utf8')) as DebianImage;
    const img =
      full.firmware === 'uefi'
        ? await buildUefiImage(base, { ...spec, firmware: 'bios' }, hash)
        : await buildImage(base, full, uuidFrom(hash));
    await writeFile(meta + '.tmp', JSON.stringify(img, null, 2) + '\n');
    await rename(meta + '.tmp', meta);
    return img;
  } finally {
    await rm(`${base}.lock`, { recursive: true, force: true });
  }
}

/** A lock directory holding the builder's pid; a dead builder's lock is taken over. */
async function takeLock(path: string): Promise<void> {
  for (;;) {
    try {
      await mkdir(path);
      await writeFile(join(path, 'pid'), String(process.pid));
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const pid = Number((await readFile(join(path, 'pid'), 'utf8').catch(() => '')) || 0);
    // No pid yet: just created, unless the creator died right then (old lock).
    let alive =
      pid === 0 &&
      Date.now() -
        (await stat(path)
          .then((st) => st.mtimeMs)
          .catch(() => 0)) <
        60_000;
    if (pid > 0) {
      try {
        process.kill(pid, 0);
        alive = true;
      } catch {
        alive = false;
      }
    }
    if (!alive) await rm(path, { recursive: true, force: true });
    else await new Promise((r) => setTimeout(r, 2000));
  }
}

interface FullSpec {
  suite: string;
  sizeMiB: number;
  packages: string[];
  kernel: boolean;
  hostname: string;
  mirror: string;
}

/**
 * What a killed builder left in `work`: its mounts (the root, and the host's
 * /dev, /proc, /sys bound into it: removing the tree with those still mounted
 * would delete the host's device nodes) and its loop device.
 */
async function releaseStale(work: string): Promise<void> {
  const mounts = (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && m.startsWith(work + '/'))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await execa('umount', ['-l', m], { reject: false });
  const loops = (await execa('losetup', ['-j', join(work, 'disk.img')], { reject: false })).stdout;
  for (const line of loops.split('\n')) {
    const dev = line.split(':')[0];
    if (dev) await execa('losetup', ['-d', dev], { reject: false });
  }
}

/** `${base}.build`, emptied: a crashed build's loop devices and mounts released first. */
async function freshBuildDir(base: string): Promise<string> {
  const work = `${base}.build`;
  await releaseStale(work);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  return work;
}

async function buildImage(base: string, spec: FullSpec, uuid: string): Promise<DebianImage> {
  const work = await freshBuildDir(base);
  const raw = join(work, 'disk.img');
  const root = join(work, 'root');
  await mkdir(root);
  const partitionBytes = spec.sizeMiB * 1024 * 1024 - PART_OFFSET;
  const undo: (() => Promise<unknown>)[] = [];
  try {
    await sh('truncate', ['-s', `${spec.sizeMiB}M`, raw]);
    await sh('sfdisk', ['--quiet', raw], { input: `label: dos\nstart=2048, type=83, bootable\n` });
    const loop = (
      await sh('losetup', ['-f', '--show', '-o', String(PART_OFFSET), '--sizelimit', String(partitionBytes), raw])
    ).stdout;
    undo.push(() => execa('losetup', ['-d', loop], { reject: false }));
    await sh('mkfs.ext4', ['-q', '-U', uuid, '-L', 'root', loop]);
    await sh('mount', [loop, root]);
    undo.push(() => execa('umount', ['-R', root], { reject: false }));

    const include = ['systemd-sysv', 'udev', 'openssh-server', 'iproute2', 'kmod', 'ca-certificates', ...spec.packages];
    await sh('debootstrap', ['--variant=minbase', `--include=${include.join(',')}`, spec.suite, root, spec.mirror]);

    await writeFile(join(root, 'etc/hostname'), spec.hostname + '\n');
    await writeFile(join(root, 'etc/hosts'), `127.0.0.1 localhost\n127.0.1.1 ${spec.hostname}\n`);
    await writeFile(join(root, 'etc/fstab'), `UUID=${uuid} / ext4 errors=remount-ro 0 1\n`);
    await writeFile(join(root, 'etc/systemd/network/20-wired.network'), '[Match]\nType=ether\n\n[Network]\nDHCP=yes\n');
    await sh('chroot', [root, 'systemctl', 'enable', 'systemd-networkd.service']);
    await sh('chroot', [root, 'passwd', '--lock', 'root']);

    const key = `${base}.ssh_key`;
    await rm(key, { force: true });
    await rm(key + '.pub', { force: true });
    await sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'p2v-test', '-f', key]);
    await mkdir(join(root, 'root/.ssh'), { recursive: true, mode: 0o700 });
    await writeFile(join(root, 'root/.ssh/authorized_keys'), await readFile(key + '.pub', 'utf8'));
    await chmod(join(root, 'root/.ssh/authorized_keys'), 0o600);

    let kernelRelease: string | undefined;
    if (spec.kernel) kernelRelease = await installKernelAndGrub(root, raw, uuid);

    await sh('umount', ['-R', root]);
    undo.pop();
    await sh('losetup', ['-d', loop]);
    undo.pop();
    await rename(raw, `${base}.img`);
    return {
      path: `${base}.img`,
      rootUuid: uuid,
      partitionOffset: PART_OFFSET,
      partitionBytes,
      sshKey: key,
      ...(kernelRelease ? { kernelRelease } : {}),
    };
  } finally {
    for (const u of undo.reverse()) await u();
    await releaseStale(work); // never remove the tree through a mount still in it
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Kernel and GRUB inside the guest. losetup -P makes no partition devices on
 * these hosts, so grub-install cannot find "the disk holding /boot" by itself.
 * What works (measured: BIOS → GRUB → login prompt in 52 s under TCG): build
 * core.img with grub-mkimage (biosdisk, part_msdos, ext2, prefix
 * (hd0,msdos1)/boot/grub), then let grub-bios-setup (in /usr/lib/grub/i386-pc,
 * not on PATH) write boot.img + core.img into the image *file*, named through
 * a device map "(hd0) /path/disk.img", with --skip-fs-probe. The kernel
 * command line names the root by UUID and puts the console on ttyS0.
 */
async function installKernelAndGrub(root: string, raw: string, uuid: string): Promise<string> {
  await needPrograms('grub-mkimage');
  // grub-bios-setup is not on PATH: grub-pc-bin keeps it beside the modules.
  const biosSetup = '/usr/lib/grub/i386-pc/grub-bios-setup';
  if (!existsSync(biosSetup))
    throw new Error(`${biosSetup} is missing: apt-get install grub-pc-bin (or run scripts/setup.sh --slow)`);
  return withChrootBinds(root, async () => {
    await chrootAptInstall(root, ['linux-image-amd64', 'grub-pc-bin', 'grub2-common']);
    const release = (await sh('chroot', [root, 'sh', '-c', 'ls /lib/modules | sort -V | tail -n 1'])).stdout.trim();
    // Our own grub.cfg rather than grub-mkconfig's: inside the chroot, / is
    // an offset loop device that grub-probe cannot relate to any disk, so
    // grub-mkconfig fails there. /etc/default/grub still lets a fixup run
    // grub-mkconfig later on the booted guest.
    await writeGrubConfig(root, uuid, release);
    const grubDir = '/usr/lib/grub/i386-pc';
    const setupDir = join(root, 'boot/grub/i386-pc');
    // GRUB loads its modules (linux, search, serial…) from here at boot.
    await mkdir(setupDir, { recursive: true });
    await sh('cp', ['-a', `${grubDir}/.`, setupDir + '/']);
    await sh('grub-mkimage', [
      '-O',
      'i386-pc',
      '-d',
      grubDir,
      '-o',
      join(setupDir, 'core.img'),
      '-p',
      '(hd0,msdos1)/boot/grub',
      'biosdisk',
      'part_msdos',
      'ext2',
      'search_fs_uuid',
    ]);
    const map = join(root, '..', 'device.map');
    await writeFile(map, `(hd0) ${raw}\n`);
    await sh(biosSetup, ['--skip-fs-probe', '-d', setupDir, '-m', map, raw]);
    return release;
  });
}

/** Run `body` with the host's /dev, /proc and /sys bound into the chroot at `root` (unbound after, whatever happens). */
async function withChrootBinds<T>(root: string, body: () => Promise<T>): Promise<T> {
  const binds = ['dev', 'proc', 'sys'];
  const bound: string[] = [];
  try {
    for (const b of binds) {
      await sh('mount', ['--bind', `/${b}`, join(root, b)]);
      bound.push(b);
    }
    return await body();
  } finally {
    for (const b of bound.reverse()) await execa('umount', ['-l', join(root, b)], { reject: false });
  }
}

async function chrootAptInstall(root: string, packages: string[]): Promise<void> {
  const env = { DEBIAN_FRONTEND: 'noninteractive', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
  await sh('chroot', [root, 'apt-get', 'install', '-y', '-q', '--no-install-recommends', ...packages], { env });
}

/**
 * /etc/default/grub (serial console, so a fixup running grub-mkconfig on the
 * booted guest keeps it) and a hand-written /boot/grub/grub.cfg booting
 * `release` with root=UUID=… and the console on ttyS0. `preamble` lines go
 * first (the UEFI image's insmods).
 */
async function writeGrubConfig(root: string, uuid: string, release: string, preamble: string[] = []): Promise<void> {
  await writeFile(
    join(root, 'etc/default/grub'),
    [
      'GRUB_DEFAULT=0',
      'GRUB_TIMEOUT=1',
      'GRUB_DISTRIBUTOR=Debian',
      'GRUB_CMDLINE_LINUX_DEFAULT=""',
      'GRUB_CMDLINE_LINUX="console=ttyS0,115200"',
      'GRUB_TERMINAL="serial console"',
      'GRUB_SERIAL_COMMAND="serial --speed=115200"',
      'GRUB_DISABLE_OS_PROBER=true',
      'GRUB_DISABLE_LINUX_UUID=false',
      '',
    ].join('\n'),
  );
  await mkdir(join(root, 'boot/grub'), { recursive: true });
  const cfg = [
    ...preamble,
    'set timeout=1',
    'serial --speed=115200',
    'terminal_input serial console',
    'terminal_output serial console',
    `search --no-floppy --fs-uuid --set=root ${uuid}`,
    `menuentry 'Debian GNU/Linux' {`,
    `  linux /boot/vmlinuz-${release} root=UUID=${uuid} ro console=ttyS0,115200`,
    `  initrd /boot/initrd.img-${release}`,
    '}',
    '',
  ].join('\n');
  await writeFile(join(root, 'boot/grub/grub.cfg'), cfg);
}

/**
 * The UEFI form of the BIOS image `biosSpec` (built first when missing: both
 * share its debootstrap and kernel), laid out as the Debian installer lays out
 * a UEFI machine:
 *
 *   GPT  p1  ESP, FAT32 (ESP_MiB), type C12A7328-…; /EFI/debian/grubx64.efi
 *        p2  root, ext4, type 0FC63DAF-… (Linux filesystem), up to 2 MiB before the end
 *   fstab: / and /boot/efi (vfat, umask=0077) by UUID
 *
 * This kernel has no vfat and makes no partition devices, so nothing here
 * mounts the ESP or runs grub-install: the FAT is made with `mkfs.fat
 * --offset` on the image file and filled with mtools (`-i IMG@@OFFSET`);
 * the root is an offset loop. The loader is what `grub-install
 * --target=x86_64-efi` (grub-efi-amd64, no shim) writes: the guest's own
 * grub-mkimage, run in the chroot, makes a core image whose embedded early
 * config finds the root by UUID and sets the prefix to /boot/grub, where the
 * x86_64-efi modules and grub.cfg are. So the ESP holds that one file, no
 * grub.cfg beside it. There is no /EFI/BOOT/BOOTX64.EFI: an installed machine
 * boots through its firmware's NVRAM entry for \EFI\debian\grubx64.efi.
 * grub-pc-bin stays installed (from the BIOS image) beside grub-efi-amd64, so
 * a converter can lay down a BIOS boot too; the BIOS image's
 * /boot/grub/i386-pc is removed (a UEFI install has none).
 */
async function buildUefiImage(base: string, biosSpec: DebianImageSpec, hash: string): Promise<DebianImage> {
  const bios = await debianImage(biosSpec);
  if (!bios.kernelRelease) throw new Error(`the cached Debian image ${bios.path} has no kernel`);
  const sizeMiB = biosSpec.sizeMiB ?? 2048;
  const uuid = uuidFrom(hash);
  const espUuid = `${hash.slice(32, 36)}-${hash.slice(36, 40)}`.toUpperCase();
  const work = await freshBuildDir(base);
  const raw = join(work, 'disk.img');
  const src = join(work, 'src');
  const root = join(work, 'root');
  await mkdir(src);
  await mkdir(root);
  const esp = { offset: PART_OFFSET, bytes: ESP_MiB * MiB };
  const rootOffset = esp.offset + esp.bytes;
  const partitionBytes = sizeMiB * MiB - rootOffset - 2 * MiB;
  const undo: (() => Promise<unknown>)[] = [];
  const loop = async (file: string, offset: number, size: number, ro = false) => {
    const args = ['-f', '--show', ...(ro ? ['--read-only'] : []), '-o', String(offset), '--sizelimit', String(size)];
    const dev = (await sh('losetup', [...args, file])).stdout;
    undo.push(() => execa('losetup', ['-d', dev], { reject: false }));
    return dev;
  };
  try {
    await sh('truncate', ['-s', `${sizeMiB}M`, raw]);
    const diskId = uuidFrom(hash.slice(16) + hash.slice(0, 16)).toUpperCase();
    await sh('sfdisk', ['--quiet', raw], {
      input:
        `label: gpt\nlabel-id: ${diskId}\n` +
        `start=${esp.offset / 512}, size=${esp.bytes / 512}, type=${ESP_TYPE}, name="EFI System Partition"\n` +
        `start=${rootOffset / 512}, size=${partitionBytes / 512}, type=${LINUX_FS_TYPE}\n`,
    });
    // FAT32 straight into the image at the ESP's offset (-h: hidden sectors = the partition's start, as installers write).
    await sh('mkfs.fat', [
      '-F',
      '32',
      '-s',
      '1',
      '-n',
      'EFI',
      '-i',
      espUuid.replace('-', ''),
      '-h',
      String(esp.offset / 512),
      '--offset',
      String(esp.offset / 512),
      raw,
      String(esp.bytes / 1024),
    ]);

    const rootDev = await loop(raw, rootOffset, partitionBytes);
    await sh('mkfs.ext4', ['-q', '-U', uuid, '-L', 'root', rootDev]);
    await sh('mount', [rootDev, root]);
    undo.push(() => execa('umount', ['-R', root], { reject: false }));
    const srcDev = await loop(bios.path, bios.partitionOffset, bios.partitionBytes, true);
    await sh('mount', ['-o', 'ro,noload', srcDev, src]);
    undo.push(() => execa('umount', [src], { reject: false }));
    await sh('cp', ['-a', `${src}/.`, `${root}/`]);

    const hostname = biosSpec.hostname ?? 'p2v-test';
    await writeFile(join(root, 'etc/hostname'), hostname + '\n');
    await writeFile(
      join(root, 'etc/fstab'),
      `UUID=${uuid} / ext4 errors=remount-ro 0 1\n` +
        `# /boot/efi was on /dev/sda1 during installation\nUUID=${espUuid} /boot/efi vfat umask=0077 0 1\n`,
    );
    await mkdir(join(root, 'boot/efi'), { recursive: true });
    await rm(join(root, 'boot/grub/i386-pc'), { recursive: true, force: true });
    // grub-efi-amd64's postinst runs update-grub when a grub.cfg exists, and
    // grub-probe fails on this offset loop: the BIOS image's grub.cfg goes first.
    await rm(join(root, 'boot/grub/grub.cfg'), { force: true });
    const release = bios.kernelRelease;
    const loader = join(work, 'grubx64.efi');
    await withChrootBinds(root, async () => {
      await chrootAptInstall(root, ['grub-efi-amd64']);
      await writeGrubConfig(root, uuid, release, ['insmod part_gpt', 'insmod ext2']);
      // Modules where grub-install puts them: normal mode loads more of them from the prefix.
      await sh('cp', ['-a', `${root}/usr/lib/grub/x86_64-efi/.`, join(root, 'boot/grub/x86_64-efi') + '/']);
      await writeFile(join(root, 'tmp/load.cfg'), `search.fs_uuid ${uuid} root\nset prefix=($root)'/boot/grub'\n`);
      // The guest's own grub-mkimage and modules (its GRUB version, not the host's).
      await sh('chroot', [
        root,
        'grub-mkimage',
        '-O',
        'x86_64-efi',
        '-d',
        '/usr/lib/grub/x86_64-efi',
        '-c',
        '/tmp/load.cfg',
        '-p',
        '/boot/grub',
        '-o',
        '/tmp/grubx64.efi',
        ...['part_gpt', 'part_msdos', 'fat', 'ext2', 'search', 'search_fs_uuid', 'search_fs_file', 'search_label'],
        ...['normal', 'configfile', 'linux', 'echo', 'test', 'serial', 'terminal', 'efi_gop', 'all_video', 'gzio'],
      ]);
      await sh('mv', [join(root, 'tmp/grubx64.efi'), loader]);
      await rm(join(root, 'tmp/load.cfg'));
    });
    const fat = `${raw}@@${esp.offset}`;
    await sh('mmd', ['-i', fat, '::/EFI', '::/EFI/debian']);
    await sh('mcopy', ['-i', fat, loader, '::/EFI/debian/grubx64.efi']);

    for (const u of undo.reverse()) await u();
    undo.length = 0;
    await rename(raw, `${base}.img`);
    return {
      path: `${base}.img`,
      rootUuid: uuid,
      partitionOffset: rootOffset,
      partitionBytes,
      sshKey: bios.sshKey,
      kernelRelease: release,
      esp: { ...esp, uuid: espUuid, loader: '\\EFI\\debian\\grubx64.efi' },
    };
  } finally {
    for (const u of undo.reverse()) await u();
    await releaseStale(work);
    await rm(work, { recursive: true, force: true });
  }
}

/** A private, writable, sparse copy of a cached image. */
export async function copyImage(img: DebianImage, dest: string): Promise<string> {
  await sh('cp', ['--sparse=always', img.path, dest]);
  return dest;
}
