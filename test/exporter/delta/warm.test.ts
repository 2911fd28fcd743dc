/**
 * Warm passes: `p2v-export --warm` reads a disk that is mounted and being
 * written (a writer loop runs on its filesystem), changes nothing, and the
 * stager keeps what it sent as the machine's base only (no output). A second
 * warm pass sends a delta; after the machine stops, the final pass sends
 * the difference, and the result equals a cold export of the stopped disk.
 */
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { makeDataDisk } from '../../../bench/delta-image.js';
import { fetchMap, runPipe } from '../../../bench/delta-pipe.js';
import { needPrograms, needRoot } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';

const MiB = 1024 * 1024;

describe('p2v-export --warm', () => {
  it('copies a mounted, busy disk as a base, then the final pass sends only the difference', async () => {
    needRoot();
    await needPrograms('nbdkit', 'nbdfuse', 'mkfs.ext4', 'qemu-img', 'cp', 'mount', 'umount');
    await withTmpDir('p2v-warm-', async (dir) => {
      const disk = await makeDataDisk(join(dir, 'src.img'), 128 * MiB, 150, 200_000);
      const mnt = join(dir, 'mnt');
      await mkdir(mnt);
      await execa('mount', ['-o', 'loop', disk.path, mnt]);
      const writer = execa(
        'sh',
        [
          '-c',
          `while :; do date >> ${mnt}/log; dd if=/dev/urandom of=${mnt}/busy bs=64k count=16 conv=notrunc status=none; sync; done`,
        ],
        { reject: false },
      );
      const staging = join(dir, 'staging');
      const imp = ['--staging', staging, '--keep-base', '--raw', join(dir, 'out'), '--quiet'];
      const exp = (...extra: string[]) => ['--disk', disk.path, '--name', 'web1', '--ovf', '--quiet', ...extra];
      let first;
      let second;
      try {
        first = await runPipe(exp('--warm'), imp);
        expect(first.exportCode, first.exportStderr).toBe(0);
        expect(first.importCode, first.importStderr).toBe(0);
        // Kept as a base only: no output from a warm pass.
        expect(await readdir(join(dir, 'out')).catch(() => [])).toEqual([]);
        await fetchMap(staging, 'web1', join(dir, 'map1'));
        second = await runPipe(exp('--warm', '--base-map', join(dir, 'map1')), imp);
        expect(second.exportCode, second.exportStderr).toBe(0);
        expect(second.importCode, second.importStderr).toBe(0);
        expect(second.bytes).toBeLessThan(first.bytes / 3);
      } finally {
        writer.kill('SIGKILL');
        await writer;
        await execa('umount', [mnt]);
      }
      // The machine is stopped: the final pass.
      await fetchMap(staging, 'web1', join(dir, 'map2'));
      const final = await runPipe(exp('--base-map', join(dir, 'map2')), imp);
      expect(final.importCode, final.importStderr).toBe(0);
      expect(final.bytes).toBeLessThan(first.bytes / 3);
      const cold = await runPipe(
        ['--disk', disk.path, '--name', 'web1', '--ovf', '--quiet'],
        ['--staging', join(dir, 's2'), '--raw', join(dir, 'cold'), '--quiet'],
      );
      expect(cold.importCode, cold.importStderr).toBe(0);
      const cmp = await execa('qemu-img', [
        'compare',
        '-f',
        'raw',
        '-F',
        'raw',
        join(dir, 'out', 'web1-disk0.raw'),
        join(dir, 'cold', 'web1-disk0.raw'),
      ]);
      expect(cmp.stdout).toMatch(/Images are identical/);
    });
  });
});
