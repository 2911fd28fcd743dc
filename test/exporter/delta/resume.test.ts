/**
 * Resume in the pipe form: `p2v-export --ovf | p2v-import --keep-base`
 * stopped after about half of its bytes leaves what arrived as an
 * interrupted base; `p2v-import --block-map NAME > map` and the same
 * pipeline with `--base-map map` then sends only what is missing, and the
 * result equals the cold import.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { makeDataDisk } from '../../../bench/delta-image.js';
import { fetchMap, runPipe } from '../../../bench/delta-pipe.js';
import { needPrograms, needRoot } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';

const MiB = 1024 * 1024;

describe('resume after a dropped pipeline', () => {
  it('sends only the missing blocks the second time and ends with the cold result', async () => {
    needRoot();
    await needPrograms('nbdkit', 'nbdfuse', 'mkfs.ext4', 'qemu-img', 'cp');
    await withTmpDir('p2v-resume-', async (dir) => {
      const disk = await makeDataDisk(join(dir, 'src.img'), 128 * MiB, 200, 200_000);
      const exp = ['--disk', disk.path, '--name', 'web1', '--ovf', '--quiet'];
      // The cold reference, into a stager of its own.
      const cold = await runPipe(exp, ['--staging', join(dir, 's0'), '--raw', join(dir, 'cold'), '--quiet']);
      expect(cold.importCode, cold.importStderr).toBe(0);

      const staging = join(dir, 'staging');
      const imp = ['--staging', staging, '--keep-base', '--raw', join(dir, 'out'), '--quiet'];
      const cut = await runPipe(exp, imp, Math.floor(cold.bytes / 2));
      expect(cut.importCode).not.toBe(0);
      expect(cut.importStderr).toMatch(/ends|cut short|truncated/i);

      await fetchMap(staging, 'web1', join(dir, 'map'));
      expect((await readFile(join(dir, 'map'))).subarray(0, 200).toString('latin1')).toMatch(/"state":"interrupted"/);
      const again = await runPipe([...exp, '--base-map', join(dir, 'map')], imp);
      expect(again.importCode, again.importStderr).toBe(0);
      expect(again.exportCode, again.exportStderr).toBe(0);
      // The half that arrived, less what was still in the importer's decode window when the input ended (grains
      // being inflated are dropped, a few MiB whatever the disk size; bench/delta.ts measures the 2 GiB ratio).
      expect(again.bytes).toBeLessThan(0.6 * cold.bytes + 6 * MiB);
      expect((await stat(join(dir, 'map'))).size).toBeLessThan(again.bytes);
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
