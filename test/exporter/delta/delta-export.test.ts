/**
 * p2v-export --base-map with the real tools: a cold export of a data disk
 * into a stager that keeps bases, the stager's map, some files changed on
 * the source, then a delta export against the map. The delta is a fraction
 * of the cold OVA, the stager's result equals a cold export of the changed
 * disk byte for byte, and a map of another machine or another disk size is
 * refused before anything is sent.
 */
import { readFile, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { cliArgv } from '../../helpers/cli.js';
import { needPrograms, needRoot } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';
import { fetchBlockMap } from '../../importer/delta/fixtures.js';
import { changeFiles, makeDataDisk } from '../../../bench/delta-image.js';

const MiB = 1024 * 1024;

async function exportTo(disk: string, ova: string, extra: string[] = []) {
  const [node, exp] = cliArgv('p2v-export');
  return execa(node!, [exp!, '--disk', disk, '--name', 'web1', '-o', ova, '--quiet', ...extra], {
    reject: false,
    stdin: 'ignore',
  });
}

async function importFrom(ova: string, staging: string, raw: string, extra: string[] = []) {
  const [node, imp] = cliArgv('p2v-import');
  return execa(node!, [imp!, '--staging', staging, '--raw', raw, '--quiet', ...extra, ova], { reject: false });
}

/** Cold export of `disk` to dir/cold.ova, imported into dir/staging with --keep-base (output dir/out1): the staging dir. */
async function coldWithBase(disk: string, dir: string): Promise<string> {
  const staging = join(dir, 'staging');
  const e = await exportTo(disk, join(dir, 'cold.ova'));
  expect(e.exitCode, e.stderr).toBe(0);
  const i = await importFrom(join(dir, 'cold.ova'), staging, join(dir, 'out1'), ['--keep-base']);
  expect(i.exitCode, i.stderr).toBe(0);
  return staging;
}

describe('p2v-export --base-map', () => {
  it('sends only the changed blocks, and the stager rebuilds exactly the cold export', async () => {
    needRoot();
    await needPrograms('nbdkit', 'nbdfuse', 'mount', 'umount', 'mkfs.ext4', 'qemu-img', 'cp');
    await withTmpDir('p2v-delta-export-', async (dir) => {
      const disk = await makeDataDisk(join(dir, 'src.img'), 128 * MiB, 120, 200_000);
      const staging = await coldWithBase(disk.path, dir);
      await fetchBlockMap(staging, 'web1', join(dir, 'map'));

      const changed = await changeFiles(disk, 20);
      let r = await exportTo(disk.path, join(dir, 'delta.ova'), ['--base-map', join(dir, 'map')]);
      expect(r.exitCode, r.stderr).toBe(0);
      const coldBytes = (await stat(join(dir, 'cold.ova'))).size;
      const deltaBytes = (await stat(join(dir, 'delta.ova'))).size;
      // Six files of about 200 kB changed: the delta is their data plus a little metadata, not the disk.
      expect(deltaBytes).toBeGreaterThan(changed);
      expect(deltaBytes).toBeLessThan(changed * 1.5 + 256 * 1024);
      expect(deltaBytes).toBeLessThan(coldBytes / 4);
      r = await importFrom(join(dir, 'delta.ova'), staging, join(dir, 'out2'), ['--keep-base']);
      expect(r.exitCode, r.stderr).toBe(0);

      // The cold export of the changed disk, into a stager of its own.
      r = await exportTo(disk.path, join(dir, 'cold2.ova'));
      expect(r.exitCode, r.stderr).toBe(0);
      r = await importFrom(join(dir, 'cold2.ova'), join(dir, 'staging2'), join(dir, 'out3'));
      expect(r.exitCode, r.stderr).toBe(0);
      const cmp = await execa('qemu-img', [
        'compare',
        '-f',
        'raw',
        '-F',
        'raw',
        join(dir, 'out2', 'web1-disk0.raw'),
        join(dir, 'out3', 'web1-disk0.raw'),
      ]);
      expect(cmp.stdout).toMatch(/Images are identical/);
    });
  });

  it('reads a map given as a pipe once, as it comes: --base-map <(p2v-import --block-map NAME)', async () => {
    needRoot();
    await needPrograms('nbdkit', 'nbdfuse', 'mount', 'umount', 'mkfs.ext4', 'qemu-img', 'cp', 'bash', 'tar');
    await withTmpDir('p2v-delta-export-', async (dir) => {
      const disk = await makeDataDisk(join(dir, 'src.img'), 64 * MiB, 60, 200_000);
      const staging = await coldWithBase(disk.path, dir);
      await changeFiles(disk, 10);
      const [node, exp] = cliArgv('p2v-export');
      const [, imp] = cliArgv('p2v-import');
      // The final pass as the user guide writes it, the map fetched while the exporter starts.
      const oneLiner = (map: string, ova: string) =>
        execa(
          'bash',
          ['-c', `"$0" "$1" --disk "$2" --name web1 --quiet -o "$3" --base-map <(${map})`, node!, exp!, disk.path, ova],
          { reject: false, env: { IMP: imp!, NODE: node!, STAGING: staging, MAP: join(dir, 'map') } },
        );
      let r = await oneLiner('"$NODE" "$IMP" --staging "$STAGING" --block-map web1', join(dir, 'pipe.ova'));
      expect(r.exitCode, r.stderr).toBe(0);
      // The same delta as from the map in a file (checked whole first, then read again).
      await fetchBlockMap(staging, 'web1', join(dir, 'map'));
      r = await exportTo(disk.path, join(dir, 'file.ova'), ['--base-map', join(dir, 'map')]);
      expect(r.exitCode, r.stderr).toBe(0);
      const member = async (ova: string) =>
        Buffer.from((await execa('tar', ['-xOf', ova, 'web1-disk1.delta'], { encoding: 'buffer' })).stdout);
      const fromPipe = await member(join(dir, 'pipe.ova'));
      expect(fromPipe.length).toBeGreaterThan(100_000);
      expect(fromPipe.equals(await member(join(dir, 'file.ova')))).toBe(true);
      // A damaged map in a pipe is found at the disk's end: the export fails and leaves no OVA.
      const bytes = await readFile(join(dir, 'map'));
      bytes[bytes.length - 5]! ^= 0xff;
      const { writeFile } = await import('node:fs/promises');
      await writeFile(join(dir, 'map.bad'), bytes);
      r = await oneLiner('cat "$MAP".bad', join(dir, 'bad.ova'));
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/^p2v-export: block map: .*(damaged|unknown entry)/m);
      await expect(stat(join(dir, 'bad.ova'))).rejects.toThrow();
    });
  });

  it('refuses the map of another machine or of another disk size before sending anything', async () => {
    needRoot();
    await needPrograms('nbdkit', 'nbdfuse', 'mkfs.ext4', 'qemu-img', 'cp');
    await withTmpDir('p2v-delta-export-', async (dir) => {
      const disk = await makeDataDisk(join(dir, 'src.img'), 64 * MiB, 10, 100_000);
      const staging = await coldWithBase(disk.path, dir);
      await fetchBlockMap(staging, 'web1', join(dir, 'map'));

      const [node, exp] = cliArgv('p2v-export');
      let r = await execa(
        node!,
        [exp!, '--disk', disk.path, '--name', 'db2', '-o', join(dir, 'x.ova'), '--base-map', join(dir, 'map')],
        { reject: false, stdin: 'ignore' },
      );
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/^p2v-export: wrong base: .*map is the map of web1, and this export is db2$/m);
      await expect(stat(join(dir, 'x.ova'))).rejects.toThrow();

      await truncate(disk.path, 96 * MiB);
      r = await exportTo(disk.path, join(dir, 'y.ova'), ['--base-map', join(dir, 'map')]);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/^p2v-export: wrong base: disk 0 is 100663296 bytes, its base 67108864$/m);
      await expect(stat(join(dir, 'y.ova'))).rejects.toThrow();

      // A damaged map is refused as such.
      const bytes = await readFile(join(dir, 'map'));
      bytes[bytes.length - 5]! ^= 0xff;
      const { writeFile } = await import('node:fs/promises');
      await writeFile(join(dir, 'bad-map'), bytes);
      await truncate(disk.path, 64 * MiB);
      r = await exportTo(disk.path, join(dir, 'z.ova'), ['--base-map', join(dir, 'bad-map')]);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/^p2v-export: block map: .*(damaged|unknown entry)/m);
    });
  });
});
