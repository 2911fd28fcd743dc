/**
 * Bases and deltas on the stager, with real files and the built p2v-import:
 * --keep-base keeps each machine's last import, --block-map prints its map,
 * a delta OVA applied to a copy of the base gives the new disk byte for
 * byte, and every wrong base, a truncated delta and a corrupted block are
 * refused with one line while the base stays exactly as it was.
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, rename, rm, stat, truncate, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readBlockMap, verifyBlockMap } from '../../../ovf/delta/index.js';
import { createReadStream } from 'node:fs';
import { cliArgv } from '../../helpers/cli.js';
import { needPrograms } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';
import { makeGoodOva, MiB, runImport } from '../fixtures.js';
import { changedCopy, fetchBlockMap, makeDeltaOva, pattern } from './fixtures.js';

const SIZE = 8 * MiB;

async function sha(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** Cold import of web1 with --keep-base, then its map in `dir/map`. */
async function coldWithBase(dir: string): Promise<{ staging: string; raw0: string; map: string }> {
  const good = await makeGoodOva(dir, { name: 'web1', sizes: [SIZE] });
  const staging = join(dir, 'staging');
  const r = await runImport(['--staging', staging, '--keep-base', '--raw', join(dir, 'out1'), good.ova]);
  expect(r.exitCode, r.stderr).toBe(0);
  expect(r.stderr).toMatch(/^p2v-import: kept complete base of web1 in .*\/staging\/bases\/web1$/m);
  const map = join(dir, 'map');
  await fetchBlockMap(staging, 'web1', map);
  return { staging, raw0: good.raws[0]!, map };
}

/** What the base holds: its disk's digest and its map, for "left intact". */
async function baseState(staging: string): Promise<string> {
  const dir = join(staging, 'bases', 'web1');
  return `${await sha(join(dir, 'disk0.raw'))} ${await readFile(join(dir, 'base.json'), 'utf8')}`;
}

/**
 * A delta of web1 against `map` (300 kB of `raw0` rewritten at 1 MiB), and two broken forms of it: cut at 60 %
 * (in the delta member) and one byte of a compressed block flipped (the manifest left as it was).
 */
async function brokenDeltas(dir: string, raw0: string, map: string, seed: number) {
  const changed = join(dir, 'new.raw');
  await changedCopy(raw0, changed, [[MiB, pattern(300_000, seed)]]);
  const { ova } = await makeDeltaOva(dir, { raws: [{ path: changed, capacity: SIZE }], map, name: 'web1' });
  const bytes = await readFile(ova);
  const cut = join(dir, 'cut.ova');
  await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
  const bad = Buffer.from(bytes);
  bad[bad.indexOf(Buffer.from('P2V-DELTA 1\n')) + 4000]! ^= 0xff;
  const corrupt = join(dir, 'corrupt.ova');
  await writeFile(corrupt, bad);
  return { changed, ova, bytes, cut, corrupt };
}

describe('bases and deltas (p2v-import --keep-base, --block-map)', () => {
  it('keeps a base, maps it, applies a delta to a copy and keeps the result as the new base', async () => {
    await needPrograms('qemu-img', 'tar', 'cp');
    await withTmpDir('p2v-delta-', async (dir) => {
      const { staging, raw0, map } = await coldWithBase(dir);
      // The map as a stream: magic, header, every entry checked against the disk's digest.
      const header = await verifyBlockMap(createReadStream(map));
      expect(header).toMatchObject({ name: 'web1', state: 'complete', blockSize: 4096 });
      expect(header.disks).toEqual([{ index: 0, capacity: SIZE, digest: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
      const list = await runImport(['--staging', staging, '--list']);
      expect(list.stdout).toMatch(/^web1\s+1\s+\S+\s+complete$/m);

      // New data in a hole, changed data, and old data zeroed (the block at SIZE/2 held data).
      const changed = join(dir, 'new.raw');
      await changedCopy(raw0, changed, [
        [MiB, pattern(100_000, 3)],
        [3 * 65536 + 4096, pattern(1000, 4)],
        [SIZE / 2, Buffer.alloc(65536)],
      ]);
      const { ova } = await makeDeltaOva(dir, { raws: [{ path: changed, capacity: SIZE }], map, name: 'web1' });
      const r = await runImport(['--staging', staging, '--keep-base', '--raw', join(dir, 'out2'), ova]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(await sha(join(dir, 'out2', 'web1-disk0.raw'))).toBe(await sha(changed));
      // The delta held only the changed blocks: 2 (new data) + 1 (changed) with data, 1 zeroed.
      expect((await readFile(ova)).length).toBeLessThan(250_000);
      // The new base is the new disk, and its map (written while applying) says so.
      expect(await sha(join(staging, 'bases', 'web1', 'disk0.raw'))).toBe(await sha(changed));
      await fetchBlockMap(staging, 'web1', join(dir, 'map2'));
      const h2 = await verifyBlockMap(createReadStream(join(dir, 'map2')));
      expect(h2.disks[0]!.digest).not.toBe(header.disks[0]!.digest);
      expect(await readdir(join(staging, 'bases'))).toEqual(['web1']);
      // The staged result became the base by rename, so the --raw output shares its inode (no second copy):
      // a write through the output is seen (size, mtime, inode) and the base is refused, never used as it is.
      const out = await open(join(dir, 'out2', 'web1-disk0.raw'), 'r+');
      await new Promise((r) => setTimeout(r, 20)); // past the filesystem's timestamp granularity
      await out.write(Buffer.from('admin'), 0, 5, 4096);
      await out.close();
      const refused = await runImport(['--staging', staging, '--block-map', 'web1']);
      expect(refused.exitCode).not.toBe(0);
      expect(refused.stderr).toMatch(/the base of web1: disk 0 changed since it was kept/);
    });
  });

  it('refuses a wrong base before writing anything and leaves the base intact', async () => {
    await needPrograms('qemu-img', 'tar', 'cp');
    await withTmpDir('p2v-delta-', async (dir) => {
      const { staging, raw0, map } = await coldWithBase(dir);
      const before = await baseState(staging);
      const changed = join(dir, 'new.raw');
      await changedCopy(raw0, changed, [[MiB, pattern(70_000, 5)]]);
      const cases: { what: string; args: string[]; spec: Partial<Parameters<typeof makeDeltaOva>[1]>; msg: RegExp }[] =
        [
          {
            what: 'another machine',
            args: ['--name', 'db2'],
            spec: {},
            msg: /wrong base: the delta was made against web1's base, and this import is db2/,
          },
          { what: 'no base at all', args: ['--name', 'db2'], spec: { name: 'db2' }, msg: /no base for db2/ },
          {
            what: 'a stale map',
            args: [],
            spec: { baseDigest: 'ab'.repeat(32) },
            msg: /does not match the base of web1/,
          },
        ];
      for (const c of cases) {
        const sub = join(dir, c.what.replace(/ /g, '-'));
        await import('node:fs/promises').then((f) => f.mkdir(sub));
        const { ova } = await makeDeltaOva(sub, {
          raws: [{ path: changed, capacity: SIZE }],
          map,
          name: 'web1',
          ...c.spec,
        });
        const r = await runImport(['--staging', staging, '--keep-base', '--raw', join(sub, 'out'), ...c.args, ova]);
        expect(r.exitCode, c.what).not.toBe(0);
        expect(r.stderr.split('\n')[0], c.what).toMatch(c.msg);
        expect(await readdir(join(sub, 'out')).catch(() => []), c.what).toEqual([]);
        expect(await baseState(staging), c.what).toBe(before);
      }
      // A different disk size: the layout changed.
      const bigger = join(dir, 'bigger.raw');
      await changedCopy(changed, bigger, []);
      await truncate(bigger, SIZE * 2);
      const sub = join(dir, 'size');
      await import('node:fs/promises').then((f) => f.mkdir(sub));
      // Made against a map claiming the bigger size would not verify; the writer is given the base's map entries
      // for the first disk, so build it against a map of the right size and rename the capacity in the descriptor.
      const { ova } = await makeDeltaOva(sub, { raws: [{ path: changed, capacity: SIZE }], map, name: 'web1' });
      const xml = (await readFile(join(sub, 'delta.ovf'), 'utf8')).replace(
        `ovf:capacity="${SIZE}"`,
        `ovf:capacity="${SIZE * 2}"`,
      );
      await writeFile(join(sub, 'delta.ovf'), xml);
      const { tarOva } = await import('../fixtures.js');
      await tarOva(sub, join(sub, 'resized.ova'), ['delta.ovf', 'disk1.delta'], 'delta.mf');
      const r = await runImport(['--staging', staging, '--raw', join(sub, 'out'), join(sub, 'resized.ova')]);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr.split('\n')[0]).toMatch(/wrong base: disk 0 is 16777216 bytes, its base 8388608/);
      expect(await baseState(staging)).toBe(before);
    });
  });

  it('refuses a truncated delta and a corrupted block, leaving the base intact', async () => {
    await needPrograms('qemu-img', 'tar', 'cp');
    await withTmpDir('p2v-delta-', async (dir) => {
      const { staging, raw0, map } = await coldWithBase(dir);
      const before = await baseState(staging);
      // Cut in the middle of the delta member; and one byte of a compressed block changed.
      const { cut, corrupt } = await brokenDeltas(dir, raw0, map, 6);
      let r = await runImport(['--staging', staging, '--keep-base', '--raw', join(dir, 'o1'), cut]);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr.trim().split('\n')[0]).toMatch(/ends|cut short|truncated/i);
      expect(await baseState(staging)).toBe(before);
      // The corrupted one: the manifest was left as it was, the importer must still refuse.
      r = await runImport(['--staging', staging, '--keep-base', '--raw', join(dir, 'o2'), corrupt]);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr.trim().split('\n')[0]).toMatch(/delta of disk 0|digest|manifest/i);
      expect(await baseState(staging)).toBe(before);
      expect(await readdir(join(dir, 'o2')).catch(() => [])).toEqual([]);
      // The staging dir holds only the base: no partial import left behind.
      expect((await readdir(staging)).sort()).toEqual(['bases']);
    });
  });

  it('applies a delta in place when no output shares the base; a refused or killed one puts the base back', async () => {
    await needPrograms('qemu-img', 'tar', 'cp', 'touch');
    await withTmpDir('p2v-delta-', async (dir) => {
      const { staging, raw0, map } = await coldWithBase(dir);
      // The admin imported out1 and removed it: the base's disk file is its own alone, so the next delta takes it.
      await rm(join(dir, 'out1'), { recursive: true });
      const baseDisk = join(staging, 'bases', 'web1', 'disk0.raw');
      const ino = (await stat(baseDisk)).ino;
      const before = await baseState(staging);
      const { changed, ova, bytes, cut, corrupt } = await brokenDeltas(dir, raw0, map, 7);
      // Refused deltas: the base is put back byte for byte, base.json included (same mtime to the nanosecond).
      let r = await runImport(['--staging', staging, '--keep-base', '--raw', join(dir, 'o1'), cut]);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/the base of web1 is as it was before this import/);
      expect(await baseState(staging)).toBe(before);
      r = await runImport(['--staging', staging, '--keep-base', '--raw', join(dir, 'o2'), corrupt]);
      expect(r.exitCode).not.toBe(0);
      expect(await baseState(staging)).toBe(before);
      expect((await readdir(staging)).sort()).toEqual(['bases']);
      // Killed (SIGKILL: no cleanup runs) after taking the base: the disk sits in the dead import's dir.
      const [node, script] = cliArgv('p2v-import');
      const child = spawn(node!, [script!, '--staging', staging, '--keep-base', '--raw', join(dir, 'o3'), '-v'], {
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      let err = '';
      const took = new Promise<void>((resolve, reject) => {
        child.stderr!.on('data', (d: Buffer) => {
          err += d.toString();
          if (/took the base of web1/.test(err)) resolve();
        });
        child.on('close', () => reject(new Error(`p2v-import ended before taking the base: ${err}`)));
      });
      child.stdin!.write(bytes.subarray(0, Math.floor(bytes.length * 0.6)));
      await took;
      child.kill('SIGKILL');
      await new Promise((resolve) => child.on('close', resolve));
      await expect(stat(baseDisk)).rejects.toThrow(/ENOENT/);
      r = await runImport(['--staging', staging, '--block-map', 'web1']);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr.split('\n')[0]).toMatch(/the base of web1 is in use: import \S+ is applying a delta to it/);
      expect((await runImport(['--staging', staging, '--list'])).stdout).toMatch(/^web1\s+-\s+-\s+in-use$/m);
      // The next import puts the base back first, then applies its delta in place: same inode, the new bytes.
      r = await runImport(['--staging', staging, '--keep-base', '--raw', join(dir, 'o4'), '-v', ova]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/the base of web1 is as it was before this import/);
      expect(r.stderr).toMatch(/written onto the base, in place under its undo journal/);
      expect(await sha(join(dir, 'o4', 'web1-disk0.raw'))).toBe(await sha(changed));
      expect((await stat(baseDisk)).ino).toBe(ino);
      expect((await readdir(staging)).sort()).toEqual(['bases']);
      expect((await readdir(join(staging, 'bases', 'web1'))).sort()).toEqual(['base.json', 'disk0.map', 'disk0.raw']);
    });
  });

  it('a base left taken by an import stopped after its commit becomes that import’s verified result', async () => {
    await needPrograms('qemu-img', 'tar', 'cp', 'touch');
    await withTmpDir('p2v-delta-', async (dir) => {
      const { staging, raw0, map } = await coldWithBase(dir);
      await rm(join(dir, 'out1'), { recursive: true });
      const { changed, ova } = await brokenDeltas(dir, raw0, map, 11);
      // Applied in place and committed; the staged copy stays (as while the outputs are being written).
      let r = await runImport([
        '--staging',
        staging,
        '--keep-base',
        '--keep-staged',
        '--raw',
        join(dir, 'o1'),
        '-v',
        ova,
      ]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/written onto the base, in place under its undo journal/);
      const id = (await readdir(staging)).find((n) => n !== 'bases')!;
      // What SIGKILL or a power cut leaves between the commit and keeping the result: the base still marked
      // taken by that import, its disk gone into the committed import (the journal was dropped at the commit).
      // Its result map, which keeping the result moved into the base, is back beside it too.
      const baseDir = join(staging, 'bases', 'web1');
      await rm(join(baseDir, 'disk0.raw'));
      await writeFile(join(baseDir, 'taken-by'), `${id}\n`);
      await rename(join(baseDir, 'disk0.map'), join(staging, id, 'disk0.map'));
      const mapIno = (await stat(join(staging, id, 'disk0.map'))).ino;
      expect((await runImport(['--staging', staging, '--list'])).stdout).toMatch(/^web1\s+-\s+-\s+in-use$/m);
      // The next map request finds the import stopped and keeps its result as the base, by copy.
      r = await runImport(['--staging', staging, '--block-map', 'web1']);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toMatch(
        new RegExp(
          `the base of web1 was taken by import ${id}, which verified its result and stopped before keeping it`,
        ),
      );
      expect(await sha(join(baseDir, 'disk0.raw'))).toBe(await sha(changed));
      expect((await readdir(baseDir)).sort()).not.toContain('taken-by');
      // The map recorded at the commit (machine.json has its digest) is the base's: the disk was not read again.
      expect((await stat(join(baseDir, 'disk0.map'))).ino).toBe(mapIno);
      expect((await readdir(staging)).sort()).toEqual([id, 'bases'].sort());
      // And the next delta, against the map of that base, applies.
      const next = join(dir, 'next.raw');
      await changedCopy(changed, next, [[3 * MiB, pattern(200_000, 12)]]);
      const map2 = join(dir, 'map2');
      await fetchBlockMap(staging, 'web1', map2);
      await mkdir(join(dir, 'd2'));
      const d2 = await makeDeltaOva(join(dir, 'd2'), {
        raws: [{ path: next, capacity: SIZE }],
        map: map2,
        name: 'web1',
      });
      r = await runImport(['--staging', staging, '--keep-base', '--raw', join(dir, 'o2'), d2.ova]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(await sha(join(dir, 'o2', 'web1-disk0.raw'))).toBe(await sha(next));
      // A stopped import whose staged copy is not whole is not kept: the base stays in use, and the reason is said.
      await rm(join(baseDir, 'disk0.raw'));
      await writeFile(join(baseDir, 'taken-by'), `${id}\n`);
      await rm(join(staging, id, 'disk0.raw'));
      r = await runImport(['--staging', staging, '--block-map', 'web1']);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(
        new RegExp(`taken by import ${id}, whose result cannot be kept: .*disk0.raw is missing`),
      );
      expect(r.stderr).toMatch(/the base of web1 is in use/);
    });
  });

  it('keeps what an interrupted import received as a base, and a resume delta completes it', async () => {
    await needPrograms('qemu-img', 'tar', 'cp');
    await withTmpDir('p2v-delta-', async (dir) => {
      const good = await makeGoodOva(dir, { name: 'web1', sizes: [SIZE] });
      const staging = join(dir, 'staging');
      const whole = await readFile(good.ova);
      // The OVA cut at 70 %: part of the VMDK's grains arrive.
      const cut = join(dir, 'cut.ova');
      await writeFile(cut, whole.subarray(0, Math.floor(whole.length * 0.7)));
      let r = await runImport(['--staging', staging, '--keep-base', '--raw', join(dir, 'o1'), cut]);
      expect(r.exitCode).not.toBe(0);
      const list = await runImport(['--staging', staging, '--list']);
      expect(list.stdout).toMatch(/^web1\s+1\s+\S+\s+interrupted$/m);
      const map = join(dir, 'map');
      await fetchBlockMap(staging, 'web1', map);
      const h = (await readBlockMap(createReadStream(map))).header;
      expect(h.state).toBe('interrupted');
      const { ova } = await makeDeltaOva(dir, { raws: [{ path: good.raws[0]!, capacity: SIZE }], map, name: 'web1' });
      r = await runImport(['--staging', staging, '--keep-base', '--raw', join(dir, 'o2'), ova]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(await sha(join(dir, 'o2', 'web1-disk0.raw'))).toBe(await sha(good.raws[0]!));
      // Drop the base: --remove NAME.
      r = await runImport(['--staging', staging, '--remove', 'web1']);
      expect(r.exitCode).toBe(0);
      expect(await readdir(join(staging, 'bases'))).toEqual([]);
      void open;
    });
  });
});
