/**
 * Concurrency and interruption: imports sharing one staging dir do not see
 * each other, and a run killed or starved mid-stream leaves nothing behind.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { needPrograms } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import { makeGoodOva, MiB, runImport } from './fixtures.js';
import { startImport, waitFor } from './running-import.js';

describe('p2v-import safety', () => {
  it('runs 4 imports into one staging dir at once without interference', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('conc', async (dir) => {
      const ovas = [];
      for (let i = 0; i < 4; i++) {
        const d = join(dir, `src${i}`);
        await execa('mkdir', ['-p', d]);
        ovas.push(await makeGoodOva(d, { sizes: [2 * MiB + i * MiB], seed: 10 + i }));
      }
      const staging = join(dir, 'staging');
      const exports = join(dir, 'exports');
      const runs = await Promise.all(
        ovas.map((o, i) =>
          runImport(['--staging', staging, '--ganeti-export', exports, '--name', `vm${i}`, '-q'], { inputFile: o.ova }),
        ),
      );
      for (const r of runs) {
        expect(r.stderr).toBe('');
        expect(r.exitCode).toBe(0);
      }
      expect((await readdir(exports)).sort()).toEqual(['vm0', 'vm1', 'vm2', 'vm3']);
      for (const [i, o] of ovas.entries()) {
        await execa('qemu-img', [
          'compare',
          '-q',
          '-f',
          'raw',
          '-F',
          'raw',
          o.raws[0]!,
          join(exports, `vm${i}`, 'disk0.raw'),
        ]);
        expect(await readFile(join(exports, `vm${i}`, 'config.ini'), 'utf8')).toContain(`name = vm${i}\n`);
      }
      expect(await readdir(staging)).toEqual([]);
    });
  });

  it('lets exactly one of two concurrent imports of the same instance win', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('race', async (dir) => {
      const good = await makeGoodOva(dir, { sizes: [8 * MiB] });
      const exports = join(dir, 'exports');
      const runs = await Promise.all(
        [1, 2].map(() =>
          runImport(['--staging', join(dir, 'staging'), '--ganeti-export', exports, '-q'], { inputFile: good.ova }),
        ),
      );
      expect(runs.map((r) => r.exitCode).sort()).toEqual([0, 1]);
      const loser = runs.find((r) => r.exitCode === 1)!;
      expect(loser.stderr.split('\n')[0]).toBe(`p2v-import: ${join(exports, 'test-vm')} already exists`);
      expect(await readdir(exports)).toEqual(['test-vm']);
      await execa('qemu-img', [
        'compare',
        '-q',
        '-f',
        'raw',
        '-F',
        'raw',
        good.raws[0]!,
        join(exports, 'test-vm', 'disk0.raw'),
      ]);
      // The loser either found the name taken from the descriptor alone (refused
      // before any data: nothing staged), or lost the race at placement: then its
      // verified import waits in staging for a retry, and the hint says where.
      const kept = (await readdir(join(dir, 'staging'))).filter((n) => !n.endsWith('.partial'));
      if (loser.stderr.includes('the verified import stays in ')) {
        expect(kept).toHaveLength(1);
        expect(loser.stderr).toContain(join(dir, 'staging', kept[0]!));
      } else {
        expect(kept).toEqual([]);
      }
    });
  });

  it('cleans up on SIGTERM mid-stream', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('sig', async (dir) => {
      const good = await makeGoodOva(dir, { sizes: [8 * MiB] });
      const bytes = await readFile(good.ova);
      const staging = join(dir, 'staging');
      const run = startImport(
        ['--staging', staging, '--ganeti-export', join(dir, 'exports')],
        bytes.subarray(0, Math.floor(bytes.length * 0.6)),
      );
      // Wait until the disk is being written inside the partial dir.
      await waitFor('a partial disk', async () => {
        const ids = await readdir(staging).catch(() => [] as string[]);
        return (
          ids.length === 1 &&
          ids[0]!.endsWith('.partial') &&
          (await readdir(join(staging, ids[0]!))).includes('disk0.raw')
        );
      });
      run.child.kill('SIGTERM');
      const { code } = await run.exit;
      expect(code).toBe(143);
      expect(run.stderr()).toMatch(/interrupted by SIGTERM, cleaning up/);
      expect(await readdir(staging)).toEqual([]);
      expect(await readdir(join(dir, 'exports')).catch(() => [])).toEqual([]);
    });
  });

  it('cleans up when the sender closes the stream mid-way', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('eof', async (dir) => {
      const good = await makeGoodOva(dir, { sizes: [8 * MiB] });
      const bytes = await readFile(good.ova);
      const staging = join(dir, 'staging');
      const run = startImport(
        ['--staging', staging, '--ganeti-export', join(dir, 'exports')],
        bytes.subarray(0, Math.floor(bytes.length * 0.6)),
      );
      await waitFor('a partial dir', async () => (await readdir(staging).catch(() => [] as string[])).length === 1);
      run.child.stdin.end();
      const { code } = await run.exit;
      expect(code).toBe(3);
      expect(run.stderr().split('\n')[0]).toBe('p2v-import: the OVA stream ends in the middle of disk1.vmdk');
      expect(await readdir(staging)).toEqual([]);
    });
  });

  it('keeps the partial dir with --keep-partial', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('keep', async (dir) => {
      const good = await makeGoodOva(dir);
      const bytes = await readFile(good.ova);
      const staging = join(dir, 'staging');
      const r = await runImport(['--staging', staging, '--keep-partial'], {
        input: bytes.subarray(0, bytes.length - 3000),
      });
      expect(r.exitCode).toBe(3);
      const ids = await readdir(staging);
      expect(ids).toHaveLength(1);
      expect(ids[0]).toMatch(/\.partial$/);
      expect(r.stderr).toContain(`kept partial import in ${join(staging, ids[0]!)}`);
    });
  });
});
