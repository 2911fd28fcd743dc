/**
 * Taking a base for an in-place delta (importer/base-take.ts), on a real
 * base kept by the built p2v-import: writes go through the undo journal, and
 * both ways back — restore() after a failure, restoreTakenIn() after a crash
 * that ran no cleanup — leave the base byte for byte as it was, base.json
 * included, and usable again.
 */
import { createHash } from 'node:crypto';
import { link, mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { memoryLogger } from '../../../lib/log.js';
import { openBase } from '../../../importer/base.js';
import { restoreTakenIn, TakenBase } from '../../../importer/base-take.js';
import { needPrograms } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';
import { makeGoodOva, MiB, runImport } from '../fixtures.js';
import { pattern } from './fixtures.js';

const sha = async (p: string) =>
  createHash('sha256')
    .update(await readFile(p))
    .digest('hex');

async function keptBase(dir: string): Promise<{ staging: string; state: () => Promise<string> }> {
  const good = await makeGoodOva(dir, { name: 'web1', sizes: [8 * MiB] });
  const staging = join(dir, 'staging');
  const r = await runImport(['--staging', staging, '--keep-base', good.ova]);
  expect(r.exitCode, r.stderr).toBe(0);
  const bdir = join(staging, 'bases', 'web1');
  return {
    staging,
    state: async () => `${await sha(join(bdir, 'disk0.raw'))} ${await readFile(join(bdir, 'base.json'), 'utf8')}`,
  };
}

/** Take the base into a fresh `<id>.partial` dir and write two runs of new bytes onto its disk. */
async function takeAndWrite(staging: string, id: string): Promise<{ taken: TakenBase; dir: string }> {
  const dir = join(staging, `${id}.partial`);
  await mkdir(dir, { mode: 0o700 });
  const base = await openBase(staging, 'web1');
  const taken = await TakenBase.take(base, dir, id, memoryLogger());
  expect(taken).toBeDefined();
  const fh = await open(taken!.path(0), 'r+');
  try {
    await taken!.write(0, fh, [
      { offset: 0, length: 8192, parts: [pattern(8192, 3)] },
      { offset: 2 * MiB, length: 65536, parts: [pattern(32768, 4), pattern(32768, 5)] },
    ]);
  } finally {
    await fh.close();
  }
  return { taken: taken!, dir };
}

describe('taking a base for an in-place delta', () => {
  it('restore() undoes the writes and puts the disk back with its identity', async () => {
    await needPrograms('qemu-img', 'touch');
    await withTmpDir('p2v-take-', async (tmp) => {
      const { staging, state } = await keptBase(tmp);
      const before = await state();
      const { taken, dir } = await takeAndWrite(staging, '20261204T000000Z-aaaaaaaa');
      await expect(openBase(staging, 'web1')).rejects.toThrow(/is in use: import 20261204T000000Z-aaaaaaaa/);
      await taken.restore();
      expect(await state()).toBe(before);
      await expect(taken.write(0, await open(join(tmp, 'x'), 'w'), [])).rejects.toThrow(/put back/);
      await rm(dir, { recursive: true });
      // The base checks out as the one kept: openBase compares size, mtime and inode with base.json.
      await expect(openBase(staging, 'web1')).resolves.toMatchObject({ name: 'web1' });
    });
  });

  it('restoreTakenIn() puts back what a killed import had taken and written', async () => {
    await needPrograms('qemu-img', 'touch');
    await withTmpDir('p2v-take-', async (tmp) => {
      const { staging, state } = await keptBase(tmp);
      const before = await state();
      const id = '20261204T000000Z-bbbbbbbb';
      // The "crash": nothing of the import's cleanup runs, the journal and the taken disk stay where they are.
      const { dir } = await takeAndWrite(staging, id);
      await expect(stat(join(staging, 'bases', 'web1', 'disk0.raw'))).rejects.toThrow(/ENOENT/);
      const log = memoryLogger();
      expect(await restoreTakenIn(staging, dir, log)).toBe(true);
      expect(log.lines.join('\n')).toMatch(/2 undo record\(s\), 73728 bytes put back/);
      expect(await state()).toBe(before);
      await expect(openBase(staging, 'web1')).resolves.toMatchObject({ name: 'web1' });
      // A dir that took nothing is left to the usual cleaning.
      expect(await restoreTakenIn(staging, join(staging, 'bases'), log)).toBe(false);
    });
  });

  it('does not take a base whose disk is also an output (a hard link): the delta goes onto a copy', async () => {
    await needPrograms('qemu-img');
    await withTmpDir('p2v-take-', async (tmp) => {
      const { staging, state } = await keptBase(tmp);
      const before = await state();
      await link(join(staging, 'bases', 'web1', 'disk0.raw'), join(tmp, 'output.raw'));
      const dir = join(staging, 'x.partial');
      await mkdir(dir);
      expect(await TakenBase.take(await openBase(staging, 'web1'), dir, 'x', memoryLogger())).toBeUndefined();
      expect(await state()).toBe(before);
    });
  });
});
