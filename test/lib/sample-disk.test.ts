import { describe, expect, it } from 'vitest';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildSampleDisk, SAMPLE_KERNEL } from '../../lib/sample-disk.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';

async function readAt(file: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(length);
    await fh.read(b, 0, length, offset);
    return b;
  } finally {
    await fh.close();
  }
}

async function blkid(file: string, offset: number, size: number): Promise<Record<string, string>> {
  const r = await execa('blkid', ['-p', '-o', 'export', '--offset', String(offset), '--size', String(size), file]);
  return Object.fromEntries(
    String(r.stdout)
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

/** Run a read-only debugfs command on the fs at `offset` through a loop device. */
async function debugfs(file: string, offset: number, size: number, cmd: string, encoding: 'utf8' | 'buffer' = 'utf8') {
  const dev = String(
    (
      await execa('losetup', [
        '--find',
        '--show',
        '--read-only',
        '-o',
        String(offset),
        '--sizelimit',
        String(size),
        file,
      ])
    ).stdout,
  );
  try {
    const r = await execa('debugfs', ['-R', cmd, dev], {
      encoding: encoding === 'buffer' ? 'buffer' : 'utf8',
      stripFinalNewline: false,
    });
    return r.stdout;
  } finally {
    await execa('losetup', ['-d', dev]);
  }
}

describe('buildSampleDisk', () => {
  it('builds an MBR Debian-like disk with a deleted file and used swap', async () => {
    needRoot();
    await needPrograms('sfdisk', 'mkfs.ext4', 'mkswap', 'losetup', 'blkid', 'debugfs', 'e2fsck', 'cpio');
    await withTmpDir('sample', async (dir) => {
      const path = join(dir, 'disk.img');
      const s = await buildSampleDisk({
        path,
        sizeMiB: 160,
        swapMiB: 16,
        deletedFileMiB: 8,
        fillerMiB: 2,
        hostname: 'web1',
      });
      expect((await stat(path)).size).toBe(160 * 1048576);
      expect(s.size).toBe(160 * 1048576);

      const table = JSON.parse(String((await execa('sfdisk', ['--json', path])).stdout)).partitiontable;
      expect(table.label).toBe('dos');
      expect(table.id).toBe(s.diskId);
      expect(
        table.partitions.map((p: { start: number; size: number; type: string; bootable?: boolean }) => [
          p.start * 512,
          p.size * 512,
          p.type,
          !!p.bootable,
        ]),
      ).toEqual([
        [s.rootOffset, s.rootSize, '83', true],
        [s.swapOffset, s.swapSize, '82', false],
      ]);
      expect(s.rootOffset).toBe(1048576);
      expect(s.swapOffset + s.swapSize).toBe(s.size);

      const root = await blkid(path, s.rootOffset, s.rootSize);
      expect([root.TYPE, root.UUID, root.LABEL]).toEqual(['ext4', s.rootUuid, s.rootLabel]);
      const swap = await blkid(path, s.swapOffset, s.swapSize);
      expect([swap.TYPE, swap.UUID, swap.LABEL]).toEqual(['swap', s.swapUuid, s.swapLabel]);

      // The swap body is random (a used swap), not zeros: sparsify must have work to do.
      const body = await readAt(path, s.swapOffset + 1048576, 65536);
      expect(body.equals(Buffer.alloc(65536))).toBe(false);
      // The deleted file's blocks still hold its data although they are free.
      expect(s.deletedExtents.reduce((n, e) => n + e.length, 0)).toBe(8 * 1048576);
      for (const e of s.deletedExtents) {
        expect(e.offset).toBeGreaterThanOrEqual(s.rootOffset);
        expect(e.offset + e.length).toBeLessThanOrEqual(s.rootOffset + s.rootSize);
        expect((await readAt(path, e.offset, 4096)).equals(Buffer.alloc(4096))).toBe(false);
      }

      // The fs is clean and has the Debian tree.
      const dev = String(
        (
          await execa('losetup', [
            '--find',
            '--show',
            '--read-only',
            '-o',
            String(s.rootOffset),
            '--sizelimit',
            String(s.rootSize),
            path,
          ])
        ).stdout,
      );
      try {
        const fsck = await execa('e2fsck', ['-fn', dev], { reject: false });
        expect(fsck.exitCode, String(fsck.stdout)).toBe(0);
      } finally {
        await execa('losetup', ['-d', dev]);
      }
      const fstab = await debugfs(path, s.rootOffset, s.rootSize, 'cat /etc/fstab');
      expect(fstab).toMatch(/^\/dev\/sda1\s+\/\s+ext4/m);
      expect(fstab).toMatch(/^\/dev\/sda2\s+none\s+swap/m);
      expect(await debugfs(path, s.rootOffset, s.rootSize, 'cat /etc/hostname')).toBe('web1\n');
      expect(await debugfs(path, s.rootOffset, s.rootSize, 'cat /usr/lib/os-release')).toContain('VERSION_ID="12"');
      expect(await debugfs(path, s.rootOffset, s.rootSize, 'cat /etc/udev/rules.d/70-persistent-net.rules')).toContain(
        `ATTR{address}=="${s.mac}"`,
      );
      expect(await debugfs(path, s.rootOffset, s.rootSize, 'cat /boot/grub/grub.cfg')).toContain('root=/dev/sda1');
      expect(await debugfs(path, s.rootOffset, s.rootSize, 'cat /etc/network/interfaces')).toMatch(
        /iface eth0 inet static\n\taddress 192\.0\.2\.10\/24/,
      );
      expect(s.liveFiles).toEqual(['/root/README.txt', '/srv/data/blob-0.bin', '/srv/data/blob-1.bin']);

      // The initrd is a real gzip-compressed newc cpio with the virtio modules in it.
      const initrd = (await debugfs(
        path,
        s.rootOffset,
        s.rootSize,
        `cat /boot/initrd.img-${SAMPLE_KERNEL}`,
        'buffer',
      )) as unknown as Uint8Array;
      expect(Buffer.from(initrd).subarray(0, 2).toString('hex')).toBe('1f8b');
      const listing = await execa('sh', ['-c', 'gzip -dc | cpio -it --quiet'], { input: Buffer.from(initrd) });
      expect(String(listing.stdout).split('\n')).toContain(
        `lib/modules/${SAMPLE_KERNEL}/kernel/drivers/block/virtio_blk.ko`,
      );
      const magic = await execa('sh', ['-c', 'gzip -dc | head -c 6'], { input: Buffer.from(initrd) });
      expect(String(magic.stdout)).toBe('070701');
    });
  });

  it('builds a GPT variant with a separate /boot and UUIDs in fstab', async () => {
    needRoot();
    await needPrograms('sfdisk', 'mkfs.ext4', 'mkswap', 'losetup', 'blkid', 'debugfs', 'cpio');
    await withTmpDir('sample', async (dir) => {
      const path = join(dir, 'gpt.img');
      const s = await buildSampleDisk({
        path,
        sizeMiB: 128,
        swapMiB: 8,
        bootMiB: 32,
        fillerMiB: 1,
        partitionTable: 'gpt',
        fstab: 'uuid',
      });
      const table = JSON.parse(String((await execa('sfdisk', ['--json', path])).stdout)).partitiontable;
      expect(table.label).toBe('gpt');
      expect(table.partitions.length).toBe(3);
      expect(s.boot?.partition).toBe(1);
      expect(s.rootPartition).toBe(2);
      expect(s.swapPartition).toBe(3);
      const fstab = await debugfs(path, s.rootOffset, s.rootSize, 'cat /etc/fstab');
      expect(fstab).toContain(`UUID=${s.rootUuid}\t/\text4`);
      expect(fstab).toContain(`UUID=${s.boot!.uuid}\t/boot\text4`);
      expect(await debugfs(path, s.boot!.offset, s.boot!.size, 'ls -l /')).toContain(`vmlinuz-${SAMPLE_KERNEL}`);
      expect(s.swapOffset + s.swapSize).toBe(s.size - 1048576);
    });
  });
});
