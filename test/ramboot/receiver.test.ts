/**
 * The receiver bundle the direct path installs on the target, which needs no
 * VM: `p2v-ramboot receiver` writes this installation's p2v-import with only
 * its production dependencies, runnable on its own.
 */
import { execa } from 'execa';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { productionPackages } from '../../ramboot/receiver.js';
import { cliArgv, ROOT } from '../helpers/cli.js';
import { withTmpDir } from '../helpers/tmp.js';

describe('p2v-ramboot receiver', () => {
  it('writes a bundle whose p2v-import runs alone, without development packages', async () => {
    await withTmpDir('p2v-receiver', async (dir) => {
      const out = join(dir, 'receiver');
      const r = await execa(cliArgv('p2v-ramboot')[0]!, [cliArgv('p2v-ramboot')[1]!, 'receiver', '-o', out, '--json'], {
        reject: false,
      });
      expect(r.exitCode, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as { packages: string[]; version: string };
      const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
        version: string;
        dependencies: Record<string, string>;
        devDependencies: Record<string, string>;
      };
      expect(report.version).toBe(pkg.version);
      for (const d of Object.keys(pkg.dependencies)) expect(report.packages).toContain(`node_modules/${d}`);
      for (const d of Object.keys(pkg.devDependencies)) expect(report.packages).not.toContain(`node_modules/${d}`);
      expect((await readdir(join(out, 'dist'))).sort()).not.toContain('bench');
      // bin/entry.js runs the linked CLI only when it is not older than dist/'s modules: the copy keeps that so.
      const linked = await stat(join(out, 'dist/bundle/p2v-import.js'));
      expect(linked.mtimeMs).toBeGreaterThanOrEqual((await stat(join(out, 'dist/importer/cli.js'))).mtimeMs);
      // Run from a folder of its own, far from the checkout's node_modules.
      const v = await execa(process.execPath, [join(out, 'bin/p2v-import.js'), '--version'], { cwd: dir });
      expect(v.stdout).toBe(`p2v-import ${pkg.version}`);
      const help = await execa(process.execPath, [join(out, 'bin/p2v-import.js'), '--help'], { cwd: dir });
      expect(help.stdout).toContain('--device');
      // Written again over itself: replaced, not nested.
      const again = await execa(cliArgv('p2v-ramboot')[0]!, [cliArgv('p2v-ramboot')[1]!, 'receiver', '-o', out]);
      expect(again.stderr).toContain(`wrote ${out}: p2v-import ${pkg.version}`);
      expect((await readdir(dir)).sort()).toEqual(['receiver']);
    });
  });

  it('finds nested and optional dependencies the way node resolves them, and names a missing one', async () => {
    await withTmpDir('p2v-receiver', async (root) => {
      const pkg = async (dir: string, json: object) => {
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, 'package.json'), JSON.stringify(json));
      };
      await pkg(root, {
        name: 'app',
        dependencies: { a: '1' },
        optionalDependencies: { gone: '1' },
        devDependencies: { dev: '1' },
      });
      await pkg(join(root, 'node_modules/a'), { name: 'a', dependencies: { b: '1', c: '1' } });
      await pkg(join(root, 'node_modules/a/node_modules/b'), { name: 'b', dependencies: { c: '1' } });
      await pkg(join(root, 'node_modules/c'), { name: 'c' });
      await pkg(join(root, 'node_modules/dev'), { name: 'dev' });
      expect(await productionPackages(root)).toEqual([
        'node_modules/a',
        'node_modules/a/node_modules/b',
        'node_modules/c',
      ]);
      await pkg(join(root, 'node_modules/c'), { name: 'c', dependencies: { missing: '1' } });
      await expect(productionPackages(root)).rejects.toThrow('dependency missing of c is not installed');
    });
  });
});
