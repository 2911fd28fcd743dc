// p2v-export --report FILE: created as -o creates its file. An existing FILE is refused before any
// work (no overlay ran: stderr is the message alone) unless --force; a symlink in its place is
// replaced, never written through.
import { describe, expect, it } from 'vitest';
import { lstat, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildSampleDisk } from '../../lib/sample-disk.js';
import type { ExportReport } from '../../exporter/export.js';
import { cliArgv } from '../helpers/cli.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';

async function exporter(args: string[]) {
  const [node, script] = cliArgv('p2v-export');
  const r = await execa(node!, [script!, ...args], { reject: false, stdin: 'ignore', timeout: 120_000 });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

describe('p2v-export --report FILE', () => {
  it('refuses an existing FILE before any work, and replaces a symlink only with --force', async () => {
    needRoot();
    await needPrograms('nbdkit', 'nbdfuse', 'mount', 'umount');
    await withTmpDir('report', async (dir) => {
      const sample = await buildSampleDisk({ path: join(dir, 'src.img'), sizeMiB: 64, swapMiB: 4, fillerMiB: 1 });
      const precious = join(dir, 'precious');
      await writeFile(precious, 'precious\n');
      const report = join(dir, 'report.json');
      await symlink(precious, report);

      const refused = await exporter(['--disk', sample.path, '--inspect', '--report', report]);
      expect(refused.stderr).toBe(
        `p2v-export: ${report} already exists: not overwritten\n` +
          'p2v-export: hint: choose another name for --report, or add --force to replace it',
      );
      expect(refused.code).toBe(2);
      expect(refused.stdout).toBe('');

      const forced = await exporter(['--disk', sample.path, '--inspect', '--json', '--report', report, '--force']);
      expect(forced.stderr).not.toMatch(/internal error/);
      expect(forced.code).toBe(0);
      expect(await readFile(precious, 'utf8')).toBe('precious\n');
      expect((await lstat(report)).isFile()).toBe(true);
      const written = JSON.parse(await readFile(report, 'utf8')) as ExportReport;
      expect(written.inspection.os?.hostname).toBe(JSON.parse(forced.stdout).os.hostname);
      expect((await readdir(dir)).sort()).toEqual(['precious', 'report.json', 'src.img']);

      const dirAsReport = await exporter(['--disk', sample.path, '--inspect', '--report', dir, '--force']);
      expect(dirAsReport.stderr).toBe(
        `p2v-export: --report ${dir} is a directory\np2v-export: hint: name the JSON file to write`,
      );
      expect(dirAsReport.code).toBe(2);
    });
  });
});
