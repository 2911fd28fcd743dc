/**
 * p2v-ganeti-os run as installed (bin/p2v-ganeti-os.js → dist/): `path`
 * finds the shipped definition, `install` copies it with the modes Ganeti
 * needs, replaces an older copy whole, and refuses bad names.
 */
import { describe, expect, it } from 'vitest';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { OS_FILES, shippedDefinitionDir } from '../../ganeti-os/definition.js';
import { cliArgv } from '../helpers/cli.js';
import { withTmpDir } from '../helpers/tmp.js';

async function cli(args: string[]) {
  const [node, script] = cliArgv('p2v-ganeti-os');
  const r = await execa(node!, [script!, ...args], { reject: false, stdin: 'ignore' });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

describe('p2v-ganeti-os', () => {
  it('path prints the shipped definition folder', async () => {
    const r = await cli(['path']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim()).toBe(shippedDefinitionDir());
    expect(await readFile(join(r.stdout.trim(), 'ganeti_api_version'), 'utf8')).toBe('20\n');
  });

  it('install copies every file with its mode, replacing an older copy whole', async () => {
    await withTmpDir('gos-cli', async (dir) => {
      const osDir = join(dir, 'os');
      // an older install with a file the new one no longer ships
      await mkdir(join(osDir, 'p2v-image'), { recursive: true });
      await writeFile(join(osDir, 'p2v-image', 'stale-script'), '#!/bin/sh\n', { mode: 0o755 });
      await writeFile(join(osDir, 'p2v-image', 'import'), 'old\n', { mode: 0o600 });

      const r = await cli(['install', '--os-dir', osDir]);
      expect(r.stderr).toMatch(/replaced .*\/os\/p2v-image \(9 files\)/);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe('');
      const target = join(osDir, 'p2v-image');
      expect((await readdir(target)).sort()).toEqual(OS_FILES.map((f) => f.name).sort());
      expect((await readdir(osDir)).filter((n) => n.startsWith('.'))).toEqual([]); // no staging leftovers
      expect((await stat(target)).mode & 0o777).toBe(0o755);
      for (const f of OS_FILES) {
        const st = await stat(join(target, f.name));
        expect(st.mode & 0o777, f.name).toBe(f.mode);
        expect(
          (await readFile(join(target, f.name))).equals(await readFile(join(shippedDefinitionDir(), f.name))),
          f.name,
        ).toBe(true);
      }

      const named = await cli(['install', '--os-dir', osDir, '--name', 'p2v-image-test', '--quiet']);
      expect(named.exitCode).toBe(0);
      expect(named.stderr).toBe('');
      expect(await readFile(join(osDir, 'p2v-image-test', 'ganeti_api_version'), 'utf8')).toBe('20\n');
    });
  });

  it('refuses a name Ganeti cannot use, unknown commands and options', async () => {
    await withTmpDir('gos-cli', async (dir) => {
      const plus = await cli(['install', '--os-dir', dir, '--name', 'p2v+image']);
      expect(plus.exitCode).toBe(2);
      expect(plus.stderr).toMatch(/'p2v\+image' is not a usable Ganeti OS name/);
      expect(plus.stderr).toMatch(/hint: /);
      expect(await readdir(dir)).toEqual([]);
    });
    const unknown = await cli(['frobnicate']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toMatch(/p2v-ganeti-os: unknown command 'frobnicate'/);
    const option = await cli(['install', '--bogus']);
    expect(option.exitCode).toBe(2);
    const none = await cli([]);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/no command given/);
  });

  it('fails with a hint when the OS directory cannot be written', async () => {
    await withTmpDir('gos-cli', async (dir) => {
      const file = join(dir, 'not-a-dir');
      await writeFile(file, '');
      const r = await cli(['install', '--os-dir', file]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/p2v-ganeti-os: cannot (create|install)/);
      expect(r.stderr).toMatch(/hint: /);
    });
  });
});
