// --version and --help of p2v-export, p2v-ramboot and p2v-ganeti-os, run as installed: the
// version is package.json's, and the help fits an 80-column terminal without commander's
// "(default: [])" or a default cut off from its value.
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { toolVersion } from '../../lib/version.js';
import { cliArgv, ROOT } from '../helpers/cli.js';

type Tool = 'p2v-export' | 'p2v-ramboot' | 'p2v-ganeti-os';

async function cli(tool: Tool, args: string[]) {
  const [node, script] = cliArgv(tool);
  // A wide terminal must not widen the help either.
  const r = await execa(node!, [script!, ...args], { reject: false, stdin: 'ignore', env: { COLUMNS: '200' } });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

const HELP: [Tool, string[]][] = [
  ['p2v-export', ['--help']],
  ['p2v-ramboot', ['--help']],
  ['p2v-ramboot', ['build', '--help']],
  ['p2v-ramboot', ['help', 'build']],
  ['p2v-ganeti-os', ['--help']],
  ['p2v-ganeti-os', ['install', '--help']],
  ['p2v-ganeti-os', ['path', '--help']],
];

describe('--version and --help', () => {
  it('lib/version reads package.json from the source tree and from dist/', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(toolVersion()).toBe(pkg.version);
    const fromDist = await execa(process.execPath, [
      '--input-type=module',
      '-e',
      `import { toolVersion } from ${JSON.stringify(join(ROOT, 'dist/lib/version.js'))}; process.stdout.write(toolVersion());`,
    ]);
    expect(fromDist.stdout).toBe(pkg.version);
  });

  it.each(['p2v-export', 'p2v-ramboot', 'p2v-ganeti-os'] as Tool[])(
    '%s --version prints its name and version',
    async (tool) => {
      for (const flag of ['--version', '-V']) {
        const r = await cli(tool, [flag]);
        expect(r.code).toBe(0);
        expect(r.stdout).toBe(`${tool} ${toolVersion()}`);
        expect(r.stderr).toBe('');
      }
    },
  );

  it.each(HELP)('%s %j fits 80 columns and reads well', async (tool, args) => {
    const r = await cli(tool, args);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines.length).toBeGreaterThan(4);
    for (const line of lines) {
      expect([...line].length, line).toBeLessThanOrEqual(80);
      expect(line).not.toMatch(/\(default:\s*$/); // a default cut off from its value
      expect(line).not.toMatch(/^\s*"?[^\s"]*"\)$/); // … or its value alone on a line
    }
    expect(r.stdout).not.toContain('(default: [])');
    expect(r.stdout).toMatch(/-V, --version|print the help of a command|-h, --help/);
  });
});
