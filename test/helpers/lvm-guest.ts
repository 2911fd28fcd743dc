/**
 * LVM disks built without device-mapper, as ../shared/README.md measured:
 * partitions on sparse files (sfdisk), PVs made with pvcreate on offset loop
 * devices, the VG with vgcreate, and the LVs recorded with vgcfgrestore from
 * the VG's backup plus a hand-written logical_volumes section (lvcreate would
 * activate them, which needs device-mapper). LV contents are written straight
 * into the image files at the LVs' extents (writeLv).
 *
 * Every lvm command gets --devices with our loop devices only, so it never
 * looks at (or trips over) other tests' devices.
 *
 *   buildLvmDisks(dir, spec): Promise<LvmDisks>
 *   writeLv(disks, lv, imageFile): Promise<void>
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

const MiB = 1024 * 1024;

export interface LvmDiskSpec {
  sizeMiB: number;
  /** Partitions from 1 MiB on, in order; `pv` ones become PVs (type 8e), the others are left blank. */
  partitions: { sizeMiB: number; type?: string; pv?: boolean }[];
}

export interface LvSegmentSpec {
  /** Index into the PVs, in disk then partition order. */
  pv: number;
  extent: number;
  count: number;
}

export interface LvSpec {
  name: string;
  segments: LvSegmentSpec[];
}

export interface LvmBuildSpec {
  vg: string;
  extentMiB?: number;
  disks: LvmDiskSpec[];
  lvs: LvSpec[];
  /** Hand-written LV sections added as they are (snapshots, striping…): names of PVs are pv0, pv1… */
  rawLvSections?: string;
}

export interface LvmDisks {
  paths: string[];
  vg: string;
  extentSize: number;
  /** Each PV: its disk, partition number, byte offset and size on the disk, and where extent 0 is. */
  pvs: { disk: number; partition: number; offset: number; size: number; firstExtent: number }[];
  /** The partitions of each disk: byte offset and size. */
  partitions: { offset: number; size: number }[][];
  lvs: LvSpec[];
}

/** A random LVM id: 32 characters in 6-4-4-4-4-4-6 groups. */
export function lvmId(): string {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const s = [...randomBytes(32)].map((b) => abc[b % abc.length]).join('');
  return [6, 4, 4, 4, 4, 4, 6]
    .reduce<{ at: number; out: string[] }>((a, n) => ({ at: a.at + n, out: [...a.out, s.slice(a.at, a.at + n)] }), {
      at: 0,
      out: [],
    })
    .out.join('-');
}

function lvSection(lv: LvSpec): string {
  let at = 0;
  const segs = lv.segments.map((s, i) => {
    const text = `
      segment${i + 1} {
        start_extent = ${at}
        extent_count = ${s.count}
        type = "striped"
        stripe_count = 1
        stripes = ["pv${s.pv}", ${s.extent}]
      }`;
    at += s.count;
    return text;
  });
  return `
    ${lv.name} {
      id = "${lvmId()}"
      status = ["READ", "WRITE", "VISIBLE"]
      flags = []
      segment_count = ${lv.segments.length}${segs.join('')}
    }`;
}

async function losetup(file: string, offset: number, size: number): Promise<string> {
  return String(
    (await execa('losetup', ['--find', '--show', '-o', String(offset), '--sizelimit', String(size), file])).stdout,
  ).trim();
}

export async function buildLvmDisks(dir: string, spec: LvmBuildSpec): Promise<LvmDisks> {
  const extentMiB = spec.extentMiB ?? 1;
  const paths: string[] = [];
  const partitions: LvmDisks['partitions'] = [];
  const pvs: LvmDisks['pvs'] = [];
  for (const [i, d] of spec.disks.entries()) {
    const path = join(dir, `lvm-disk${i}.img`);
    const fh = await open(path, 'w');
    await fh.truncate(d.sizeMiB * MiB);
    await fh.close();
    let start = 1;
    const parts: { offset: number; size: number }[] = [];
    const lines = d.partitions.map((p) => {
      const line = `start=${start * 2048}, size=${p.sizeMiB * 2048}, type=${p.type ?? (p.pv ? '8e' : '83')}`;
      parts.push({ offset: start * MiB, size: p.sizeMiB * MiB });
      start += p.sizeMiB;
      return line;
    });
    await execa('sfdisk', ['-q', path], { input: `label: dos\n${lines.join('\n')}\n` });
    for (const [j, p] of d.partitions.entries())
      if (p.pv) pvs.push({ disk: i, partition: j + 1, offset: parts[j]!.offset, size: parts[j]!.size, firstExtent: 0 });
    paths.push(path);
    partitions.push(parts);
  }
  const loops: string[] = [];
  try {
    for (const pv of pvs) loops.push(await losetup(paths[pv.disk]!, pv.offset, pv.size));
    const devices = ['--devices', loops.join(',')];
    const lvm = (args: string[]) => execa(args[0]!, [...args.slice(1), ...devices], { stdin: 'ignore' });
    await lvm(['pvcreate', '-ff', '-y', ...loops]);
    await lvm(['vgcreate', '-s', `${extentMiB}M`, spec.vg, ...loops]);
    const backup = join(dir, `${spec.vg}.vgbackup`);
    await lvm(['vgcfgbackup', '-f', backup, spec.vg]);
    const text = await readFile(backup, 'utf8');
    // pe_start of each PV (sectors), in pv0, pv1… order.
    const peStarts = [...text.matchAll(/pe_start = (\d+)/g)].map((m) => Number(m[1]) * 512);
    pvs.forEach((pv, i) => (pv.firstExtent = pv.offset + peStarts[i]!));
    const end = text.trimEnd().lastIndexOf('}');
    const lvText = `\n  logical_volumes {${spec.lvs.map(lvSection).join('')}${spec.rawLvSections ?? ''}\n  }\n`;
    await writeFile(backup, text.slice(0, end) + lvText + text.slice(end));
    await lvm(['vgcfgrestore', '-f', backup, spec.vg]);
  } finally {
    for (const l of loops) await execa('losetup', ['-d', l], { reject: false });
  }
  return { paths, vg: spec.vg, extentSize: extentMiB * MiB, pvs, partitions, lvs: spec.lvs };
}

/** Byte ranges of an LV on the disks, in LV order. */
export function lvRanges(disks: LvmDisks, name: string): { disk: number; offset: number; size: number }[] {
  const lv = disks.lvs.find((l) => l.name === name);
  if (!lv) throw new Error(`no LV ${name}`);
  return lv.segments.map((s) => {
    const pv = disks.pvs[s.pv]!;
    return { disk: pv.disk, offset: pv.firstExtent + s.extent * disks.extentSize, size: s.count * disks.extentSize };
  });
}

/** Size of an LV in bytes. */
export const lvSize = (disks: LvmDisks, name: string) => lvRanges(disks, name).reduce((n, r) => n + r.size, 0);

/** Copy an image (a filesystem made for the LV's size) into the LV's extents, keeping the disks sparse. */
export async function writeLv(disks: LvmDisks, name: string, image: string): Promise<void> {
  let at = 0;
  for (const r of lvRanges(disks, name)) {
    await execa('dd', [
      `if=${image}`,
      `of=${disks.paths[r.disk]}`,
      'bs=1M',
      `skip=${at}`,
      `seek=${r.offset}`,
      `count=${r.size}`,
      'iflag=skip_bytes,count_bytes',
      'oflag=seek_bytes',
      'conv=notrunc,sparse',
      'status=none',
    ]);
    at += r.size;
  }
}

/* ------------------------------------------------------------------------ */
/* The bootable LVM guest of the slow suite.                                */
/* ------------------------------------------------------------------------ */

/** The guest's VG and LV names: fstab and root= name /dev/mapper/vgp2v-root, as installers write them. */
export const GUEST_VG = 'vgp2v';
const GUEST_BUILD_VERSION = 1;

export interface LvmDebianGuest {
  /** The cached image: never write it (copy it, or boot it with qemu -snapshot). */
  path: string;
  size: number;
  kernelRelease: string;
  bootUuid: string;
  rootUuid: string;
  swapUuid: string;
  /** The root LV's bytes on the disk (one linear segment). */
  root: { offset: number; size: number };
  /** Bytes of random data written into extents no LV uses (they must not be sent). */
  dirtBytes: number;
}

async function withLoop<T>(file: string, offset: number, size: number, body: (dev: string) => Promise<T>, ro = false) {
  const dev = String(
    (
      await execa('losetup', [
        '--find',
        '--show',
        ...(ro ? ['--read-only'] : []),
        '-o',
        String(offset),
        '--sizelimit',
        String(size),
        file,
      ])
    ).stdout,
  ).trim();
  try {
    return await body(dev);
  } finally {
    for (let i = 0; i < 40; i++) {
      if ((await execa('losetup', ['-d', dev], { reject: false })).exitCode === 0) break;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * A Debian bookworm machine installed the way the Debian installer's
 * "guided - use entire disk and set up LVM" does, assembled from the cached
 * debootstrap image with lvm2 (test/helpers/debian-image.ts) without
 * device-mapper:
 *
 *   MBR  p1  /boot ext4 (256 MiB, bootable; GRUB's core.img in the MBR gap)
 *        p2  LVM PV → VG vgp2v (4 MiB extents): root (1792 MiB, ext4), swap (128 MiB);
 *            64 MiB of random bytes in the unused extents
 *   fstab /dev/mapper/vgp2v-root, UUID= for /boot, /dev/mapper/vgp2v-swap;
 *   root=/dev/mapper/vgp2v-root on the kernel command line, console on ttyS0.
 *
 * The guest's own initramfs (lvm2 installed before the kernel) activates the
 * VG at boot. Built once into the image cache under a name keyed by the base
 * image and this builder's version.
 */
export async function lvmDebianGuest(): Promise<LvmDebianGuest> {
  const { cacheDir, debianImage, SHARED_MACHINE_SPEC } = await import('./debian-image.js');
  // The same cached image as test/e2e/debian-machine.ts (one debootstrap for both).
  const base = await debianImage({ ...SHARED_MACHINE_SPEC, packages: [...SHARED_MACHINE_SPEC.packages] });
  if (!base.kernelRelease) throw new Error(`the cached Debian image ${base.path} has no kernel`);
  const { createHash } = await import('node:crypto');
  const { existsSync } = await import('node:fs');
  const { mkdir, rename, rm } = await import('node:fs/promises');
  const key = createHash('sha256')
    .update(`${base.path}:${base.rootUuid}:${GUEST_BUILD_VERSION}`)
    .digest('hex')
    .slice(0, 16);
  const out = join(cacheDir(), `lvm-guest-${key}`);
  if (existsSync(`${out}.json`)) return JSON.parse(await readFile(`${out}.json`, 'utf8')) as LvmDebianGuest;
  const lock = `${out}.lock`;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch {
      if (existsSync(`${out}.json`)) return JSON.parse(await readFile(`${out}.json`, 'utf8')) as LvmDebianGuest;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  const work = `${out}.build`;
  try {
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    const guest = await assembleLvmGuest(
      work,
      base.path,
      base.partitionOffset,
      base.partitionBytes,
      base.kernelRelease,
    );
    await rename(join(work, 'disk.img'), `${out}.img`);
    guest.path = `${out}.img`;
    await writeFile(`${out}.json`, JSON.stringify(guest, null, 2) + '\n');
    return guest;
  } finally {
    await rm(work, { recursive: true, force: true });
    await rm(lock, { recursive: true, force: true });
  }
}

async function assembleLvmGuest(
  work: string,
  baseImage: string,
  baseOffset: number,
  baseSize: number,
  release: string,
): Promise<LvmDebianGuest> {
  const { mkdir } = await import('node:fs/promises');
  const bootUuid = '0b00b00b-0000-4000-8000-00000000b007';
  const rootUuid = '0f00f00f-0000-4000-8000-00000000f00f';
  const swapUuid = '5a5a5a5a-0000-4000-8000-00000000a5a5';
  const disks = await buildLvmDisks(work, {
    vg: GUEST_VG,
    extentMiB: 4,
    disks: [
      {
        sizeMiB: 2600,
        partitions: [
          { sizeMiB: 256, type: '83' },
          { sizeMiB: 2300, pv: true },
        ],
      },
    ],
    lvs: [
      { name: 'root', segments: [{ pv: 0, extent: 0, count: 448 }] },
      { name: 'swap', segments: [{ pv: 0, extent: 448, count: 32 }] },
    ],
  });
  const disk = join(work, 'disk.img');
  const { rename } = await import('node:fs/promises');
  await rename(disks.paths[0]!, disk);
  await execa('sfdisk', ['--quiet', '--activate', disk, '1']);
  const boot = disks.partitions[0]![0]!;
  const [root] = lvRanges(disks, 'root');
  const [swap] = lvRanges(disks, 'swap');
  // Random bytes in unused extents (after swap): what an old, deleted LV leaves behind.
  const dirtBytes = 64 * MiB;
  const fh = await open(disk, 'r+');
  for (let at = 0; at < dirtBytes; at += 4 * MiB)
    await fh.write(randomBytes(4 * MiB), 0, 4 * MiB, swap!.offset + swap!.size + 40 * MiB + at);
  await fh.close();
  await withLoop(disk, swap!.offset, swap!.size, (dev) => execa('mkswap', ['-U', swapUuid, '-L', 'swap', dev]));

  const src = join(work, 'src');
  const dst = join(work, 'dst');
  await mkdir(src);
  await mkdir(dst);
  await withLoop(
    baseImage,
    baseOffset,
    baseSize,
    async (srcDev) => {
      await execa('mount', ['-o', 'ro,noload', srcDev, src]);
      try {
        await withLoop(disk, root!.offset, root!.size, async (rootDev) => {
          await execa('mkfs.ext4', ['-q', '-U', rootUuid, '-L', 'root', rootDev]);
          await withLoop(disk, boot.offset, boot.size, async (bootDev) => {
            await execa('mkfs.ext4', ['-q', '-U', bootUuid, '-L', 'boot', bootDev]);
            await execa('mount', [rootDev, dst]);
            try {
              await mkdir(join(dst, 'boot'));
              await execa('mount', [bootDev, join(dst, 'boot')]);
              try {
                await execa('cp', ['-a', `${src}/.`, `${dst}/`]);
                await configureLvmGuest(dst, disk, release, bootUuid);
              } finally {
                await execa('umount', [join(dst, 'boot')]);
              }
            } finally {
              await execa('umount', [dst]);
            }
          });
        });
      } finally {
        await execa('umount', [src]);
      }
    },
    true,
  );
  return {
    path: disk,
    size: 2600 * MiB,
    kernelRelease: release,
    bootUuid,
    rootUuid,
    swapUuid,
    root: { offset: root!.offset, size: root!.size },
    dirtBytes,
  };
}

/** fstab, hostname, GRUB on the separate /boot, and a check that the initramfs can activate LVM. */
async function configureLvmGuest(root: string, disk: string, release: string, bootUuid: string): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  await writeFile(join(root, 'etc/hostname'), 'oldhost\n');
  await writeFile(join(root, 'etc/hosts'), '127.0.0.1\tlocalhost\n127.0.1.1\toldhost\n');
  await writeFile(
    join(root, 'etc/fstab'),
    '# /etc/fstab: static file system information.\n' +
      `/dev/mapper/${GUEST_VG}-root\t/\text4\terrors=remount-ro\t0\t1\n` +
      `# /boot was on /dev/sda1 during installation\nUUID=${bootUuid}\t/boot\text4\tdefaults\t0\t2\n` +
      `/dev/mapper/${GUEST_VG}-swap\tnone\tswap\tsw\t0\t0\n`,
  );
  // The initramfs must hold what activates the VG: lvm2's hook (the lvm binary) and device-mapper.
  // The guest's own lsinitramfs (initramfs-tools is in every Debian): the host needs none.
  const list = String((await execa('chroot', [root, 'lsinitramfs', `/boot/initrd.img-${release}`])).stdout);
  if (!/(^|\/)s?bin\/lvm$/m.test(list) || !/dm-mod\.ko/m.test(list))
    throw new Error(
      `the initramfs of ${release} cannot activate LVM (no lvm binary or dm-mod): was lvm2 installed before the kernel?`,
    );
  const cfg = [
    'set timeout=1',
    'serial --speed=115200',
    'terminal_input serial console',
    'terminal_output serial console',
    `search --no-floppy --fs-uuid --set=root ${bootUuid}`,
    `menuentry 'Debian GNU/Linux' {`,
    `  linux /vmlinuz-${release} root=/dev/mapper/${GUEST_VG}-root ro console=ttyS0,115200`,
    `  initrd /initrd.img-${release}`,
    '}',
    '',
  ].join('\n');
  const grubDir = '/usr/lib/grub/i386-pc';
  const setupDir = join(root, 'boot/grub/i386-pc');
  await mkdir(setupDir, { recursive: true });
  await writeFile(join(root, 'boot/grub/grub.cfg'), cfg);
  await execa('cp', ['-a', `${grubDir}/.`, setupDir + '/']);
  // /boot is its own filesystem: GRUB's prefix is /grub on partition 1.
  await execa('grub-mkimage', [
    '-O',
    'i386-pc',
    '-d',
    grubDir,
    '-o',
    join(setupDir, 'core.img'),
    '-p',
    '(hd0,msdos1)/grub',
    'biosdisk',
    'part_msdos',
    'ext2',
    'search_fs_uuid',
  ]);
  const map = join(root, '..', 'device.map');
  await writeFile(map, `(hd0) ${disk}\n`);
  await execa('/usr/lib/grub/i386-pc/grub-bios-setup', ['--skip-fs-probe', '-d', setupDir, '-m', map, disk]);
}
