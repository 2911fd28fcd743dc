import { describe, expect, it } from 'vitest';
import { mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { attachPartition } from '../../exporter/disk-files.js';
import { mountGuest } from '../../exporter/mount.js';
import { inspect } from '../../exporter/inspect.js';
import { checkSourceNotMountedRw, parseFstrim, sparsify } from '../../exporter/sparsify.js';
import type { Inspection } from '../../guest/types.js';
import { memoryLogger } from '../../lib/log.js';
import { buildSampleDisk } from '../../lib/sample-disk.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import {
  covered,
  expectNoLeftovers,
  overlayAndExpose,
  sha256,
  zeroRanges,
  MOUNT_PATH_PROGRAMS,
} from './mount-fixture.js';

const MACHINE: Inspection['machine'] = { cpus: 1, memoryMiB: 1024, nics: [] };
const PROGRAMS = [...MOUNT_PATH_PROGRAMS, 'nbdinfo', 'e2fsck', 'fstrim'];

describe('sparsify', () => {
  it('turns the deleted file and the swap body into holes in the overlay, keeping the swap identity', async () => {
    needRoot();
    await needPrograms(...PROGRAMS);
    await withTmpDir('sparsify', async (dir) => {
      const path = join(dir, 'disk.img');
      const s = await buildSampleDisk({ path, sizeMiB: 160, swapMiB: 24, deletedFileMiB: 24, fillerMiB: 2 });
      const before = await sha256(path);
      const x = await overlayAndExpose(path, dir);
      try {
        const deleted = s.deletedExtents.reduce((n, e) => n + e.length, 0);
        // The new swap header dirties one whole cow-filter block (64 KiB); everything after it must be a hole.
        const swapBody = { offset: s.swapOffset + 65536, length: s.swapSize - 65536 };
        const zeroBefore = await zeroRanges(x.overlay.uri);
        expect(s.deletedExtents.reduce((n, e) => n + covered(zeroBefore, e.offset, e.length), 0)).toBe(0);
        expect(covered(zeroBefore, swapBody.offset, swapBody.length)).toBe(0);

        const log = memoryLogger();
        const i = await inspect([{ source: path, exposed: x.disk, size: x.size }], {
          workDir: dir,
          machine: MACHINE,
          log,
        });
        const gm = await mountGuest(i, [x.disk], dir, { warn: console.warn });
        let report;
        try {
          report = await sparsify(i, gm, [x.disk], { log });
        } finally {
          await gm.unmountAll();
        }
        expect(report.warnings).toEqual([]);
        expect(report.swaps).toEqual([
          { disk: 0, partition: 2, uuid: s.swapUuid, label: s.swapLabel, bytes: s.swapSize },
        ]);
        expect(report.filesystems).toHaveLength(1);
        expect(report.filesystems[0]).toMatchObject({ disk: 0, partition: 1, guestPath: '/', fsType: 'ext4' });
        expect(report.filesystems[0]!.trimmedBytes).toBeGreaterThanOrEqual(deleted);

        // The cow filter now reports the deleted file's blocks and the swap body as holes.
        const zeroAfter = await zeroRanges(x.overlay.uri);
        expect(s.deletedExtents.reduce((n, e) => n + covered(zeroAfter, e.offset, e.length), 0)).toBe(deleted);
        expect(covered(zeroAfter, swapBody.offset, swapBody.length)).toBe(swapBody.length);

        // The swap keeps its identity; the root fs checks clean.
        const blk = await execa('blkid', [
          '-p',
          '-o',
          'export',
          '--offset',
          String(s.swapOffset),
          '--size',
          String(s.swapSize),
          x.disk.path,
        ]);
        expect(String(blk.stdout)).toContain(`UUID=${s.swapUuid}`);
        expect(String(blk.stdout)).toContain(`LABEL=${s.swapLabel}`);
        expect(String(blk.stdout)).toContain('TYPE=swap');
        const part = await attachPartition(x.disk.path, s.rootOffset, s.rootSize, { readOnly: true });
        try {
          const fsck = await execa('e2fsck', ['-fn', part.device], { reject: false });
          expect(fsck.exitCode, String(fsck.stdout)).toBe(0);
        } finally {
          await part.detach();
        }
      } finally {
        await x.close();
      }
      expect(await sha256(path)).toBe(before);
      await expectNoLeftovers(dir);
    });
  });

  it('trims a filesystem the guest does not mount and warns about one it cannot', async () => {
    needRoot();
    await needPrograms(...PROGRAMS, 'mkfs.minix');
    await withTmpDir('sparsify', async (dir) => {
      const path = join(dir, 'disk.img');
      await buildSampleDisk({ path, sizeMiB: 96, swapMiB: 0, fillerMiB: 0 });
      // A second disk: p1 ext4 not in fstab with free space, p2 a minix fs (blkid knows it, we do not mount it).
      const data = join(dir, 'data.img');
      await writeFile(data, '');
      await truncate(data, 48 * 1048576);
      await execa('sfdisk', ['-q', data], {
        input: 'label: dos\nstart=2048, size=40960, type=83\nstart=43008, type=81\n',
      });
      await execa('mkfs.ext4', ['-q', '-F', '-b', '4096', '-E', 'offset=1048576', data, '20480k']);
      const minix = join(dir, 'minix.img');
      await writeFile(minix, '');
      await truncate(minix, 4 * 1048576);
      await execa('mkfs.minix', ['-3', minix]);
      await execa('dd', [`if=${minix}`, `of=${data}`, 'bs=512', 'seek=43008', 'conv=notrunc', 'status=none']);
      const a = await overlayAndExpose(path, dir);
      const b = await overlayAndExpose(data, dir);
      try {
        const log = memoryLogger();
        const i = await inspect(
          [
            { source: path, exposed: a.disk, size: a.size },
            { source: data, exposed: b.disk, size: b.size },
          ],
          { workDir: dir, machine: MACHINE, log },
        );
        const gm = await mountGuest(i, [a.disk, b.disk], dir, { warn: console.warn });
        let report;
        try {
          report = await sparsify(i, gm, [a.disk, b.disk], { log });
        } finally {
          await gm.unmountAll();
        }
        expect(i.disks[1]!.partitions[1]!.fsType).toBe('minix');
        expect(report.filesystems.map((f) => [f.disk, f.partition, f.guestPath])).toEqual([
          [0, 1, '/'],
          [1, 1, undefined],
        ]);
        expect(report.filesystems[1]!.trimmedBytes).toBeGreaterThan(10 * 1048576);
        expect(report.warnings).toEqual(['the minix on sdb partition 2 cannot be mounted here: it is copied whole']);
      } finally {
        await b.close();
        await a.close();
      }
      await expectNoLeftovers(dir);
    });
  });

  it('parses fstrim -v output', () => {
    expect(parseFstrim('/mnt/x: 54.7 MiB (57367552 bytes) trimmed\n')).toBe(57367552);
    expect(parseFstrim('/mnt/x: 0 B (0 bytes) trimmed on /dev/loop3')).toBe(0);
  });
});

describe('checkSourceNotMountedRw', () => {
  it('refuses a block device mounted read-write, accepts it read-only and accepts an image file', async () => {
    needRoot();
    await needPrograms('losetup', 'mount', 'mkfs.ext4');
    await withTmpDir('busy', async (dir) => {
      const img = join(dir, 'fs.img');
      await writeFile(img, '');
      await truncate(img, 16 * 1048576);
      await execa('mkfs.ext4', ['-q', '-F', img]);
      await checkSourceNotMountedRw(img);
      const dev = String((await execa('losetup', ['--find', '--show', img])).stdout);
      const mnt = join(dir, 'mnt');
      await mkdir(mnt);
      try {
        await checkSourceNotMountedRw(dev);
        await execa('mount', [dev, mnt]);
        try {
          const err = await checkSourceNotMountedRw(dev).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err).toMatchObject({ code: 'SOURCE_BUSY', hint: expect.stringContaining('live image') });
          expect((err as Error).message).toBe(`${dev} is in use read-write by this system (${dev.slice(5)} on ${mnt})`);
          await execa('mount', ['-o', 'remount,ro', mnt]);
          await checkSourceNotMountedRw(dev);
        } finally {
          await execa('umount', [mnt]);
        }
      } finally {
        await execa('losetup', ['-d', dev]);
      }
      await expect(checkSourceNotMountedRw(join(dir, 'missing'))).rejects.toMatchObject({ code: 'USAGE' });
      await expectNoLeftovers(dir);
    });
  });
});
