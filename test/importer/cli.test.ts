import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { cliArgv, ROOT } from '../helpers/cli.js';
import { needPrograms } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeGoodOva, MiB, runImport } from './fixtures.js';

describe('p2v-import command line', () => {
  it('refuses bad usage with one line, a hint and status 2, before creating anything', async () => {
    await withTmpDir('cli', async (dir) => {
      const st = join(dir, 'staging');
      const cases: [string[], string, string][] = [
        [['--bogus'], "unknown option '--bogus'", 'see p2v-import --help'],
        [['a.ova', 'b.ova'], 'too many arguments. Expected 1 argument but got 2.', 'see p2v-import --help'],
        [['--disk-size', '12X'], 'invalid --disk-size "12X"', 'give a size such as 100G, 512M or a number of bytes'],
        [
          ['--name', 'Bad/Name'],
          'invalid instance name "Bad/Name"',
          'use a host name: lower-case letters, digits, "-" and "." (e.g. web1.example.org)',
        ],
        [['--nic-mode', 'weird'], 'invalid --nic-mode "weird"', 'use one of bridged, routed, openvswitch'],
        [['--os', 'a b'], 'invalid --os "a b"', 'give a Ganeti OS as NAME+VARIANT, e.g. p2v-image+default'],
        [
          [join(dir, 'missing.ova')],
          `cannot read ${join(dir, 'missing.ova')}: ENOENT: no such file or directory, open '${join(dir, 'missing.ova')}'`,
          'give an OVA file, or - for standard input',
        ],
      ];
      for (const [args, error, hint] of cases) {
        const r = await runImport(['--staging', st, ...args], { input: Buffer.alloc(0) });
        expect(r.stderr, args.join(' ')).toBe(`p2v-import: ${error}\np2v-import: hint: ${hint}`);
        expect(r.exitCode).toBe(2);
      }
      expect(await readdir(dir)).toEqual([]);
    });
  });
});

describe('p2v-import --version, --help and --progress-fd', () => {
  it('prints its version from package.json', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await runImport(['--version']);
    expect(r.stdout).toBe(`p2v-import ${pkg.version}`);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });

  it('has a --help that fits 80 columns, shows --debug and no empty defaults', async () => {
    const r = await runImport(['--help'], { env: { COLUMNS: '200' } });
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.split('\n');
    for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(80);
    expect(r.stdout).not.toContain('(default:');
    expect(r.stdout).not.toContain('[]');
    for (const option of [
      '--debug',
      '--list',
      '--remove <id>',
      '--from-staged <id>',
      '--max-staging <size>',
      '--idle-timeout <time>',
      '--progress-fd <n>',
      '--version',
    ])
      expect(
        lines.some((l) => l.trimStart().startsWith(option)),
        option,
      ).toBe(true);
    // A description continued on the next line starts under the first, never mid-column.
    const column = lines.find((l) => l.startsWith('  --ganeti-export'))!.indexOf('write');
    for (const l of lines.filter((l) => /^ {3,}\S/.test(l))) expect(l.length - l.trimStart().length).toBe(column);
  });

  it('writes JSON lines for every phase to --progress-fd only', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('cli-progress', async (dir) => {
      const good = await makeGoodOva(dir, { sizes: [4 * MiB] });
      const jsonl = join(dir, 'progress.jsonl');
      const [node, script] = cliArgv('p2v-import');
      const exports = join(dir, 'exports');
      // As a user would: the shell opens descriptor 3 on a file.
      const r = await execa(
        'sh',
        [
          '-c',
          'exec "$@" 3>"$JSONL"',
          'sh',
          node!,
          script!,
          ...['--staging', join(dir, 'st'), '--ganeti-export', exports, '--ova', join(dir, 'out.ova')],
          ...['--progress-fd', '3', good.ova],
        ],
        { reject: false, env: { P2V_DEBUG: '', JSONL: jsonl } },
      );
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        [`p2v-import: output: ${join(exports, 'test-vm')}`, `p2v-import: output: ${join(dir, 'out.ova')}`].join('\n'),
      );
      expect(r.exitCode).toBe(0);
      const events = (await readFile(jsonl, 'utf8'))
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      for (const e of events) {
        if (e.type === 'phase')
          expect(Object.keys(e).sort()).toEqual(
            e.state === 'start' ? ['phase', 'state', 'type'] : ['ok', 'phase', 'seconds', 'state', 'type'],
          );
        else expect(Object.keys(e).sort()).toEqual(['done', 'eta', 'final', 'phase', 'rate', 'total', 'type', 'unit']);
      }
      expect(events.filter((e) => e.type === 'phase').map((e) => `${String(e.phase)}: ${String(e.state)}`)).toEqual([
        'receive: start',
        'receive: end',
        `write ganeti-export ${exports}: start`,
        `write ganeti-export ${exports}: end`,
        `write ova ${join(dir, 'out.ova')}: start`,
        `write ova ${join(dir, 'out.ova')}: end`,
      ]);
      const disk = events.filter((e) => e.type === 'progress');
      expect(disk.length).toBeGreaterThan(0);
      expect(disk.every((e) => e.phase === 'receiving disk 0')).toBe(true);
      // No ovf:size in this descriptor: the total is unknown, never guessed.
      expect(disk.at(-1)).toMatchObject({ final: true, total: null, unit: 'bytes' });
      expect(disk.at(-1)!.done as number).toBeGreaterThan(0);
      // Between receive's start and end, and nowhere else.
      const first = events.findIndex((e) => e.type === 'progress');
      const receiveEnd = events.findIndex((e) => e.phase === 'receive' && e.state === 'end');
      expect(first).toBeGreaterThan(0);
      expect(events.findLastIndex((e) => e.type === 'progress')).toBeLessThan(receiveEnd);
    });
  });

  it('refuses a --progress-fd it cannot use, and modes that do not go together', async () => {
    await withTmpDir('cli-modes', async (dir) => {
      const st = join(dir, 'staging');
      const cases: [string[], string, string][] = [
        [
          ['--progress-fd', '2'],
          '--progress-fd 2 is standard error: JSON progress needs a descriptor of its own',
          'use --progress-fd 3 with 3>FILE (or 3>&1 to read it through a pipe when stdout is free)',
        ],
        [
          ['--progress-fd', '9'],
          '--progress-fd 9: descriptor 9 is not open',
          'open it in the shell that runs the command, e.g. --progress-fd 9 9>progress.jsonl',
        ],
        [
          ['--progress-fd', 'x'],
          'invalid --progress-fd "x"',
          'give an open file descriptor: 1 (standard output) or 3 and above, e.g. --progress-fd 3 3>progress.jsonl',
        ],
        [
          ['--list', '--remove', '20240101T000000Z-00000001'],
          '--list and --remove cannot be combined',
          'see p2v-import --help',
        ],
        [['--list', '--raw', dir], '--list writes no outputs', 'see p2v-import --help'],
        [
          ['--remove', '20240101T000000Z-00000001', 'x.ova'],
          '--remove reads no OVA; refused "x.ova"',
          'see p2v-import --help',
        ],
        [
          ['--idle-timeout', '5 minutes'],
          'invalid --idle-timeout "5 minutes"',
          'give a duration such as 10m, 90s, 1h or a number of seconds (0: no timeout)',
        ],
        [
          ['--max-staging', 'lots'],
          'invalid --max-staging "lots"',
          'give a size such as 100G, 512M or a number of bytes',
        ],
      ];
      for (const [args, error, hint] of cases) {
        const r = await runImport(['--staging', st, ...args], { input: Buffer.alloc(0) });
        expect(r.stderr, args.join(' ')).toBe(`p2v-import: ${error}\np2v-import: hint: ${hint}`);
        expect(r.exitCode).toBe(2);
      }
      expect(await readdir(dir)).toEqual([]);
    });
  });
});
