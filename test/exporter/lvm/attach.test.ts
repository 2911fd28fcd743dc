/**
 * exporter/lvm/attach.ts: an LV as a block device without device-mapper. One
 * range is an offset loop; several ranges (segments on two disks) go through
 * our NBD server and nbdfuse. A filesystem made on the composed device must
 * land at the right bytes of each disk file, and a trim must come out as
 * holes in those files.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { attachVolume } from '../../../exporter/lvm/attach.js';
import type { InspectedVolume } from '../../../guest/types.js';
import { needPrograms, needRoot } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';

const MiB = 1024 * 1024;

async function sparseFile(path: string, size: number): Promise<void> {
  const fh = await open(path, 'w');
  await fh.truncate(size);
  await fh.close();
}

/** Allocated bytes of a file (st_blocks), to see holes. */
const allocated = async (path: string) => (await stat(path)).blocks * 512;

describe('attachVolume', () => {
  it('composes two segments on two disk files into one device: data lands at each range, trims become holes', async () => {
    needRoot();
    await needPrograms('nbdfuse', 'fusermount3', 'losetup', 'mkfs.ext4', 'fstrim', 'fallocate');
    await withTmpDir('lvm-attach', async (dir) => {
      const a = join(dir, 'a.img');
      const b = join(dir, 'b.img');
      await sparseFile(a, 40 * MiB);
      await sparseFile(b, 40 * MiB);
      const volume: InspectedVolume = {
        vg: 'vg',
        name: 'data',
        id: 'vg/data',
        size: 32 * MiB,
        ranges: [
          { disk: 0, offset: 5 * MiB, size: 12 * MiB },
          { disk: 1, offset: 20 * MiB, size: 20 * MiB },
        ],
      };
      const dev = await attachVolume(volume, [a, b], dir);
      const mnt = join(dir, 'mnt');
      await mkdir(mnt);
      const content = randomBytes(24 * MiB);
      try {
        expect(Number(String((await execa('blockdev', ['--getsize64', dev.device])).stdout))).toBe(32 * MiB);
        await execa('mkfs.ext4', ['-q', '-E', 'nodiscard', '-L', 'composed', dev.device]);
        await execa('mount', [dev.device, mnt]);
        try {
          await writeFile(join(mnt, 'big.bin'), content);
          await execa('sync');
          const before = (await allocated(a)) + (await allocated(b));
          await execa('rm', [join(mnt, 'big.bin')]);
          await execa('sync');
          const trimmed = await execa('fstrim', ['-v', mnt]);
          expect(String(trimmed.stdout)).toMatch(/trimmed/);
          const after = (await allocated(a)) + (await allocated(b));
          // The 24 MiB file spanned both segments: its blocks are holes again in the disk files.
          expect(before - after).toBeGreaterThan(20 * MiB);
          await writeFile(join(mnt, 'small.txt'), 'hello\n');
        } finally {
          await execa('umount', [mnt]);
        }
      } finally {
        await dev.detach();
      }
      // Nothing outside the two ranges was written.
      const bufA = await readFile(a);
      const bufB = await readFile(b);
      expect(bufA.subarray(0, 5 * MiB).every((x) => x === 0)).toBe(true);
      expect(bufA.subarray(17 * MiB).every((x) => x === 0)).toBe(true);
      expect(bufB.subarray(0, 20 * MiB).every((x) => x === 0)).toBe(true);
      // The ext4 superblock is 1 KiB into the first range.
      expect(bufA.readUInt16LE(5 * MiB + 1024 + 0x38)).toBe(0xef53);
      // Read back as one file made of the two ranges: a clean filesystem with the file in it.
      const whole = join(dir, 'whole.img');
      await writeFile(whole, Buffer.concat([bufA.subarray(5 * MiB, 17 * MiB), bufB.subarray(20 * MiB, 40 * MiB)]));
      const fsck = await execa('e2fsck', ['-fn', whole], { reject: false, all: true });
      expect(fsck.exitCode, String(fsck.all)).toBe(0);
      const cat = await execa('debugfs', ['-R', 'cat /small.txt', whole]);
      expect(String(cat.stdout)).toBe('hello');
      // Nothing left: no nbdfuse mount, no loop device on our files.
      expect(String((await execa('losetup', ['-j', a])).stdout)).toBe('');
      expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(dir);
    });
  }, 120_000);

  it('attaches a one-range LV as an offset loop on the disk file', async () => {
    needRoot();
    await withTmpDir('lvm-attach1', async (dir) => {
      const a = join(dir, 'a.img');
      await sparseFile(a, 16 * MiB);
      const dev = await attachVolume(
        { vg: 'vg', name: 'root', id: 'vg/root', size: 8 * MiB, ranges: [{ disk: 0, offset: 4 * MiB, size: 8 * MiB }] },
        [a],
        dir,
      );
      try {
        const info = String(
          (await execa('losetup', ['--list', '--noheadings', '-O', 'OFFSET,SIZELIMIT,BACK-FILE', dev.device])).stdout,
        );
        expect(info.trim().split(/\s+/)).toEqual([String(4 * MiB), String(8 * MiB), a]);
      } finally {
        await dev.detach();
      }
    });
  });
});
