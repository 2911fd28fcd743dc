// p2v-export --progress-fd 3: JSON lines for every phase on descriptor 3 only, with totals that
// hold (done ≤ total everywhere, the stream ending at exactly the data bytes read), and -o FILE
// refusing to replace an existing file unless --force.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFile, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildSampleDisk } from '../../lib/sample-disk.js';
import type { PhaseEvent, ProgressEvent, ProgressUpdateEvent } from '../../lib/progress.js';
import type { ExportReport } from '../../exporter/export.js';
import { cliArgv } from '../helpers/cli.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  fd3: string;
}

/** Run p2v-export with a pipe on descriptor 3 as well as stdout and stderr. */
function runWithFd3(args: string[]): Promise<Run> {
  const [node, script] = cliArgv('p2v-export');
  const child = spawn(node!, [script!, ...args], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
  const read = (s: NodeJS.ReadableStream | null | undefined) => {
    let text = '';
    s?.on('data', (b: Buffer) => (text += b.toString('utf8')));
    return () => text;
  };
  const out = read(child.stdout);
  const err = read(child.stderr);
  const fd3 = read(child.stdio[3] as NodeJS.ReadableStream);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: out(), stderr: err(), fd3: fd3() }));
  });
}

describe('p2v-export --progress-fd', () => {
  it('writes JSON lines for every phase to its descriptor only, with totals that hold', async () => {
    needRoot();
    await needPrograms('nbdkit', 'nbdfuse', 'mount', 'umount', 'fstrim', 'tar');
    await withTmpDir('progress', async (dir) => {
      const sample = await buildSampleDisk({ path: join(dir, 'src.img'), sizeMiB: 96, swapMiB: 8, fillerMiB: 6 });
      const ova = join(dir, 'm.ova');
      const reportFile = join(dir, 'report.json');
      // An existing file is refused without --force, before any work, and stays as it was.
      await writeFile(ova, 'precious\n');
      const refused = await runWithFd3(['--disk', sample.path, '-o', ova, '--progress-fd', '3']);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toBe(
        `p2v-export: ${ova} already exists: not overwritten\n` +
          'p2v-export: hint: choose another name, or add --force to replace it\n',
      );
      expect(refused.fd3).toBe('');
      expect(await readFile(ova, 'utf8')).toBe('precious\n');
      expect(await readdir(dir)).not.toContain('m.ova.partial');

      const r = await runWithFd3([
        '--disk',
        sample.path,
        '--hostname',
        'progress1',
        '-o',
        ova,
        '--force',
        '--progress',
        'tty',
        '--progress-fd',
        '3',
        '--report',
        reportFile,
      ]);
      expect(r.stderr).not.toMatch(/internal error/);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe('');
      // The text log and the TTY line carry no JSON.
      for (const line of r.stderr.split(/[\r\n]/)) expect(line.trim().startsWith('{'), line).toBe(false);
      const ttyStream = r.stderr.split(/[\r\n]/).filter((l) => l.startsWith('stream:'));
      expect(ttyStream.at(-1)).toMatch(/^stream: 100\.0% [\d.]+ \w+ \/ [\d.]+ \w+ {2}[\d.]+ \w+\/s/);

      const lines = r.fd3.split('\n');
      expect(lines.pop()).toBe(''); // every line ends with a newline
      const events = lines.map((l) => JSON.parse(l) as ProgressEvent);
      const phases = events.filter((e): e is PhaseEvent => e.type === 'phase');
      const updates = events.filter((e): e is ProgressUpdateEvent => e.type === 'progress');
      expect(phases.length + updates.length).toBe(events.length);

      // Every phase starts, then ends ok, in pipeline order, none nested in another.
      const order = ['overlay', 'inspect', 'mount', 'fixups', 'trim', 'stream', 'finish'];
      expect(phases.map((p) => `${p.phase}:${p.state}`)).toEqual(order.flatMap((p) => [`${p}:start`, `${p}:end`]));
      for (const p of phases.filter((x) => x.state === 'end')) {
        expect(p.ok).toBe(true);
        expect(p.seconds).toBeGreaterThanOrEqual(0);
      }
      // Progress lines fall inside their phase.
      let current: string | undefined;
      for (const e of events) {
        if (e.type === 'phase') current = e.state === 'start' ? e.phase : undefined;
        else expect(e.phase).toBe(current);
      }
      for (const u of updates) {
        expect(u.total).not.toBeNull();
        expect(u.done).toBeGreaterThanOrEqual(0);
        expect(u.done).toBeLessThanOrEqual(u.total!);
        expect(u.rate).toBeGreaterThanOrEqual(0);
      }
      const final = (phase: string) => updates.filter((u) => u.phase === phase && u.final);
      // One final update per counted phase, with everything done.
      expect(final('overlay')).toMatchObject([{ unit: 'items', done: 1, total: 1 }]);
      expect(final('fixups')).toHaveLength(1);
      expect(final('fixups')[0]!.done).toBe(final('fixups')[0]!.total);
      expect(final('fixups')[0]!.done).toBeGreaterThan(0);
      // The sample has an ext4 root and a swap partition.
      expect(final('trim')).toMatchObject([{ unit: 'items', done: 2, total: 2 }]);

      const report = JSON.parse(await readFile(reportFile, 'utf8')) as ExportReport;
      const dataBytes = report.disks.reduce((n, d) => n + d.dataBytes, 0);
      const stream = updates.filter((u) => u.phase === 'stream');
      expect(stream[0]).toMatchObject({ unit: 'bytes', done: 0, total: dataBytes });
      expect(stream.at(-1)).toMatchObject({ final: true, done: dataBytes, total: dataBytes, eta: 0 });
      // Running totals: never backwards.
      for (let i = 1; i < stream.length; i++) expect(stream[i]!.done).toBeGreaterThanOrEqual(stream[i - 1]!.done);

      // --force replaced the file with a complete OVA, and no partial file is left.
      const { stdout: members } = await execa('tar', ['-tf', ova]);
      expect(members.split('\n')).toEqual(['progress1.ovf', 'progress1-disk1.vmdk', 'progress1.mf']);
      expect((await readdir(dir)).sort()).toEqual(['m.ova', 'report.json', 'src.img']);
    });
  });
});
