/**
 * The built-in sample physical disk: a small raw image that looks like the
 * boot disk of a Debian 12 machine installed on bare metal (MBR or GPT, ext4
 * root, swap, /dev/sda names in fstab, a MAC-pinned udev rule, a real
 * gzip-compressed newc initramfs), built in seconds with no network. Tests,
 * the README's `npm run sample` and the benches all start from it.
 *
 * It also carries the dirt a real disk has: a deleted file whose blocks still
 * hold random data, and a swap partition full of random pages behind a fresh
 * swap header, so sparsify has something to reclaim.
 *
 * This module assembles the disk (partitions, filesystems, loop devices,
 * dirt); what goes into its root filesystem is sample-tree.ts's.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, truncate, writeFile, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { P2vError } from './errors.js';
import { withCleanup } from './exit-actions.js';
import { requireProgram, run, runText } from './run.js';
import { buildInitrd, buildTree, put } from './sample-tree.js';

export interface SampleDiskOptions {
  /** Image file to create (overwritten). */
  path: string;
  /** Disk size, default 512. */
  sizeMiB?: number;
  /** Swap partition size, default 64. */
  swapMiB?: number;
  /** Size of a file written into the root fs and deleted again, default 0. */
  deletedFileMiB?: number;
  /** Live files of pseudo-random content under /srv/data, default 4. */
  fillerMiB?: number;
  hostname?: string;
  /** MAC of eth0 (udev rule), default 52:54:00:12:34:56. */
  mac?: string;
  /** Static address of eth0 in CIDR form, default 192.0.2.10/24. */
  ip?: string;
  /** Partition table, default 'dos' (MBR). */
  partitionTable?: 'dos' | 'gpt';
  /** How fstab names the filesystems: 'device' (/dev/sda1, the default), 'uuid' or 'label'. */
  fstab?: 'device' | 'uuid' | 'label';
  /** A separate /boot partition of this size (ext4, partition 1) before the root; default none. */
  bootMiB?: number;
}

export interface SampleDisk {
  path: string;
  size: number;
  partitionTable: 'dos' | 'gpt';
  /** MBR disk identifier ("0x…") or GPT disk GUID. */
  diskId: string;
  rootUuid: string;
  rootLabel: string;
  rootPartition: number;
  rootOffset: number;
  rootSize: number;
  swapUuid: string;
  swapLabel?: string;
  swapPartition: number;
  swapOffset: number;
  swapSize: number;
  boot?: { uuid: string; label: string; partition: number; offset: number; size: number };
  /** Guest paths with known content. */
  liveFiles: string[];
  /** sha256 of each live file, by guest path. */
  liveFileDigests: Record<string, string>;
  /** Disk byte ranges that held the deleted file (free blocks full of data). */
  deletedExtents: { offset: number; length: number }[];
  kernelVersion: string;
  hostname: string;
  mac: string;
  ip: string;
}

const MiB = 1024 * 1024;
export const SAMPLE_KERNEL = '6.1.0-18-amd64';
const GPT_LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
const GPT_SWAP = '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F';

/** Attach a region of `file` to a loop device for the duration of `body`. */
async function withLoop<T>(file: string, offset: number, size: number, body: (dev: string) => Promise<T>): Promise<T> {
  return withCleanup(async (scope) => {
    const dev = await runText(
      'losetup',
      ['--find', '--show', '-o', String(offset), '--sizelimit', String(size), file],
      {
        what: 'attaching a loop device to the sample disk',
      },
    );
    scope.onExit(`detach ${dev}`, () => run('losetup', ['-d', dev]).then(() => undefined));
    return body(dev);
  });
}

async function writeRandom(file: string, offset: number, length: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    for (let done = 0; done < length;) {
      const n = Math.min(4 * MiB, length - done);
      await fh.write(randomBytes(n), 0, n, offset + done);
      done += n;
    }
  } finally {
    await fh.close();
  }
}

/** Disk byte ranges of `guestPath`'s blocks in an ext4 fs starting at `fsOffset`. */
async function extentsOf(
  dev: string,
  guestPath: string,
  fsOffset: number,
  blockSize: number,
): Promise<{ offset: number; length: number }[]> {
  const out = await runText('debugfs', ['-R', `blocks ${guestPath}`, dev], { what: 'listing the deleted file blocks' });
  const blocks = out
    .split(/\s+/)
    .filter((x) => /^\d+$/.test(x))
    .map(Number)
    .sort((a, b) => a - b);
  const ranges: { offset: number; length: number }[] = [];
  for (const b of blocks) {
    const off = fsOffset + b * blockSize;
    const last = ranges[ranges.length - 1];
    if (last && last.offset + last.length === off) last.length += blockSize;
    else ranges.push({ offset: off, length: blockSize });
  }
  return ranges;
}

export async function buildSampleDisk(opts: SampleDiskOptions): Promise<SampleDisk> {
  for (const p of ['sfdisk', 'mkfs.ext4', 'mkswap', 'losetup', 'cpio', 'debugfs']) await requireProgram(p);
  const sizeMiB = opts.sizeMiB ?? 512;
  const swapMiB = opts.swapMiB ?? 64;
  const bootMiB = opts.bootMiB ?? 0;
  const table = opts.partitionTable ?? 'dos';
  const deletedMiB = opts.deletedFileMiB ?? 0;
  const hostname = opts.hostname ?? 'p2v-sample';
  const mac = (opts.mac ?? '52:54:00:12:34:56').toLowerCase();
  const ip = opts.ip ?? '192.0.2.10/24';
  const kver = SAMPLE_KERNEL;
  // 1 MiB alignment at the front, and 1 MiB at the back for the GPT backup header.
  const rootMiB = sizeMiB - 1 - swapMiB - bootMiB - (table === 'gpt' ? 1 : 0);
  if (rootMiB < 16 + deletedMiB + (opts.fillerMiB ?? 4))
    throw new P2vError('USAGE', `sample disk of ${sizeMiB} MiB is too small for its root filesystem`, {
      hint: 'give a larger sizeMiB or smaller swap, filler and deleted files',
    });

  const size = sizeMiB * MiB;
  let next = 1;
  const layout: { mib: number; start: number }[] = [];
  for (const mib of [bootMiB, rootMiB, swapMiB]) {
    if (mib > 0) layout.push({ mib, start: next });
    next += mib;
  }
  const bootPart = bootMiB > 0 ? 1 : 0;
  const rootPart = bootPart + 1;
  const swapPart = swapMiB > 0 ? rootPart + 1 : 0;
  const rootOffset = layout[rootPart - 1]!.start * MiB;
  const rootSize = rootMiB * MiB;
  const swapOffset = swapPart ? layout[swapPart - 1]!.start * MiB : 0;
  const swapSize = swapMiB * MiB;
  const rootUuid = randomUUID();
  const swapUuid = randomUUID();
  const bootUuid = randomUUID();
  const rootLabel = 'sample-root';
  const swapLabel = 'sample-swap';
  const bootLabel = 'sample-boot';
  const diskId = table === 'dos' ? `0x${randomBytes(4).toString('hex')}` : randomUUID().toUpperCase();

  await rm(opts.path, { force: true });
  await writeFile(opts.path, '');
  await truncate(opts.path, size);

  const linux = table === 'dos' ? '83' : GPT_LINUX;
  const swapType = table === 'dos' ? '82' : GPT_SWAP;
  const lines = [`label: ${table}`, `label-id: ${diskId}`, 'unit: sectors', ''];
  layout.forEach((p, i) => {
    const n = i + 1;
    const type = n === swapPart ? swapType : linux;
    const boot = table === 'dos' && n === 1 ? ', bootable' : '';
    lines.push(`start=${p.start * 2048}, size=${p.mib * 2048}, type=${type}${boot}`);
  });
  await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', opts.path], {
    input: lines.join('\n') + '\n',
    what: 'partitioning the sample disk',
  });

  const name = (n: number, uuid: string, label: string) =>
    opts.fstab === 'uuid' ? `UUID=${uuid}` : opts.fstab === 'label' ? `LABEL=${label}` : `/dev/sda${n}`;
  let fstab =
    '# /etc/fstab: static file system information.\n# <file system> <mount point> <type> <options> <dump> <pass>\n';
  fstab += `${name(rootPart, rootUuid, rootLabel)}\t/\text4\terrors=remount-ro\t0\t1\n`;
  if (bootPart) fstab += `${name(bootPart, bootUuid, bootLabel)}\t/boot\text4\tdefaults\t0\t2\n`;
  if (swapPart) fstab += `${name(swapPart, swapUuid, swapLabel)}\tnone\tswap\tsw\t0\t0\n`;
  fstab += '/dev/sr0\t/media/cdrom0\tudf,iso9660\tuser,noauto\t0\t0\ntmpfs\t/tmp\ttmpfs\tdefaults,size=64m\t0\t0\n';

  const work = await mkdtemp(join(dirname(opts.path), '.sample-build-'));
  try {
    const tree = join(work, 'root');
    const digests = await buildTree(tree, {
      hostname,
      mac,
      ip,
      kver,
      fstab,
      fillerMiB: opts.fillerMiB ?? 4,
      rootDevice: `/dev/sda${rootPart}`,
      grubPrefix: bootPart ? '' : '/boot',
    });
    const initrd = await buildInitrd(work, kver);
    await put(tree, `boot/initrd.img-${kver}`, initrd);

    const mkfs = async (dir: string, offset: number, bytes: number, uuid: string, label: string) =>
      run(
        'mkfs.ext4',
        [
          '-q',
          '-F',
          '-b',
          '4096',
          '-E',
          `offset=${offset},root_owner=0:0`,
          '-U',
          uuid,
          '-L',
          label,
          '-d',
          dir,
          opts.path,
          `${bytes / 1024}k`,
        ],
        { what: `making the sample ${label} filesystem` },
      );
    if (bootPart) {
      // The boot tree goes to its own fs and the root keeps an empty /boot to mount it on.
      const bootTree = join(work, 'boot');
      await rename(join(tree, 'boot'), bootTree);
      await mkdir(join(tree, 'boot'));
      await mkfs(bootTree, layout[0]!.start * MiB, bootMiB * MiB, bootUuid, bootLabel);
    }
    await mkfs(tree, rootOffset, rootSize, rootUuid, rootLabel);

    let deletedExtents: { offset: number; length: number }[] = [];
    if (deletedMiB > 0) {
      deletedExtents = await withLoop(opts.path, rootOffset, rootSize, async (dev) => {
        const mnt = join(work, 'mnt');
        await mkdir(mnt);
        const mounted = async (body: () => Promise<void>) => {
          await run('mount', ['-t', 'ext4', dev, mnt], { what: 'mounting the sample root filesystem' });
          try {
            await body();
          } finally {
            await run('umount', [mnt]);
          }
        };
        await mounted(() =>
          run('dd', [
            'if=/dev/urandom',
            `of=${join(mnt, 'var/log/old-backup.tar')}`,
            'bs=1M',
            `count=${deletedMiB}`,
            'conv=fsync',
            'status=none',
          ]).then(() => undefined),
        );
        // debugfs reads the device, not the journal: on a mounted filesystem it can see an inode whose
        // newest extents are still only in the journal. Unmounted, the journal is checkpointed.
        const ext = await extentsOf(dev, '/var/log/old-backup.tar', rootOffset, 4096);
        await mounted(() => run('rm', [join(mnt, 'var/log/old-backup.tar')]).then(() => undefined));
        return ext;
      });
    }

    if (swapPart) {
      // A used swap area: random pages behind a fresh header (mkswap only writes the first page).
      await writeRandom(opts.path, swapOffset, swapSize);
      await withLoop(opts.path, swapOffset, swapSize, (dev) =>
        run('mkswap', ['-U', swapUuid, '-L', swapLabel, dev], { what: 'making the sample swap' }),
      );
    }

    return {
      path: opts.path,
      size,
      partitionTable: table,
      diskId,
      rootUuid,
      rootLabel,
      rootPartition: rootPart,
      rootOffset,
      rootSize,
      swapUuid,
      swapLabel: swapPart ? swapLabel : undefined,
      swapPartition: swapPart,
      swapOffset,
      swapSize: swapPart ? swapSize : 0,
      boot: bootPart
        ? { uuid: bootUuid, label: bootLabel, partition: bootPart, offset: layout[0]!.start * MiB, size: bootMiB * MiB }
        : undefined,
      liveFiles: Object.keys(digests),
      liveFileDigests: digests,
      deletedExtents,
      kernelVersion: kver,
      hostname,
      mac,
      ip,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
