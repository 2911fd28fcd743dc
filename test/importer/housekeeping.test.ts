/**
 * Housekeeping of the staging directory with real imports and real files:
 * --list, --remove, start-up cleaning of dead partial imports (never a live
 * one), --max-staging, --idle-timeout on a pipe that stops sending, and
 * --from-staged turning a kept copy into outputs.
 */
import { lstat, mkdir, readFile, readdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { needPrograms } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import { makeGoodOva, MiB, runImport } from './fixtures.js';
import { claimedPartials, startImport, waitFor } from './running-import.js';

const ID = /^\d{8}T\d{6}Z-[0-9a-f]{8}$/;

async function committed(staging: string): Promise<string[]> {
  return (await readdir(staging)).filter((n) => ID.test(n)).sort();
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** A partial import left by a process that is gone: an owner file naming a pid that exited. */
async function deadPartial(staging: string, id: string): Promise<string> {
  const child = await execa('sh', ['-c', 'echo $$']);
  const dir = join(staging, `${id}.partial`);
  await mkdir(dir, { recursive: true });
  const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  await writeFile(
    join(dir, 'owner'),
    JSON.stringify({
      host: (await execa('hostname')).stdout.trim(),
      pid: Number(child.stdout),
      bootId,
      startTime: '1',
    }),
  );
  await writeFile(join(dir, 'disk0.raw'), Buffer.alloc(4096, 7));
  return dir;
}

function rows(listing: string): string[][] {
  return listing
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s{2,}/));
}

describe('p2v-import housekeeping', () => {
  it('lists, removes and clears dead partial imports but never a live one', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('hk', async (dir) => {
      const good = await makeGoodOva(dir, { sizes: [8 * MiB] });
      const staging = join(dir, 'staging');
      // Two kept copies (no outputs: the staged copy is the result).
      for (const name of ['web1', 'db1']) {
        const r = await runImport(['--staging', staging, '--name', name, '-q'], { inputFile: good.ova });
        expect(r.stderr).toBe('');
        expect(r.exitCode).toBe(0);
      }
      // Ids sort by second, then a random suffix: two imports in one second sort either way, so name them by their machine.json.
      const ids = await committed(staging);
      expect(ids).toHaveLength(2);
      const idOf = new Map<string, string>();
      for (const id of ids)
        idOf.set(JSON.parse(await readFile(join(staging, id, 'machine.json'), 'utf8')).instanceName as string, id);
      const [web1, db1] = [idOf.get('web1'), idOf.get('db1')];

      // A live import, held mid-stream by a pipe that stays open.
      const bytes = await readFile(good.ova);
      const live = startImport(['--staging', staging, '--name', 'live1'], bytes.subarray(0, bytes.length >> 1));
      await waitFor(
        'the live import to claim its partial dir',
        async () => (await claimedPartials(staging)).length === 1,
      );
      const [livePartial] = await claimedPartials(staging);

      // Left behind by killed imports: one with an owner file of a dead process, one from before owner files, an hour old.
      const dead = await deadPartial(staging, '20200101T000000Z-0000dead');
      const ownerless = join(staging, '20200101T000000Z-0000beef.partial');
      await mkdir(ownerless);
      const hourAgo = new Date(Date.now() - 3600_000);
      await utimes(ownerless, hourAgo, hourAgo);
      // Not ours at all: never listed or touched.
      await writeFile(join(staging, 'notes.txt'), 'admin notes\n');

      const list = await runImport(['--staging', staging, '--list']);
      expect(list.stderr).toBe('');
      expect(list.exitCode).toBe(0);
      const table = rows(list.stdout);
      expect(table[0]).toEqual(['ID', 'NAME', 'DISKS', 'SIZE', 'AGE', 'STATE']);
      const byId = new Map(table.slice(1).map((r) => [r[0]!, r]));
      expect([...byId.keys()].sort()).toEqual(
        [web1!, db1!, livePartial!, '20200101T000000Z-0000dead.partial', '20200101T000000Z-0000beef.partial'].sort(),
      );
      expect(byId.get(web1!)!.slice(1, 3)).toEqual(['web1', '1']);
      expect(byId.get(web1!)![5]).toBe('committed');
      expect(byId.get(db1!)![1]).toBe('db1');
      expect(byId.get(livePartial!)![5]).toBe('partial-live');
      expect(byId.get('20200101T000000Z-0000dead.partial')![5]).toBe('partial-dead');
      expect(byId.get('20200101T000000Z-0000beef.partial')![5]).toBe('partial-dead');
      // Size on disk: the staged 8 MiB disk holds its four 64 KiB data runs, not 8 MiB.
      expect(byId.get(web1!)![3]).toMatch(/^(2\d\d(\.\d)? KiB)$/);

      // A live import is refused by --remove.
      const busy = await runImport(['--staging', staging, '--remove', livePartial!]);
      expect(busy.stderr.split('\n')[0]).toMatch(
        new RegExp(
          `^p2v-import: import ${livePartial!.replace('.', '\\.')} is still running \\(process ${live.child.pid} on .+\\); not removed$`,
        ),
      );
      expect(busy.exitCode).toBe(2);

      // The next import clears both dead partials at start-up, and only them.
      const next = await runImport(['--staging', staging, '--name', 'app1'], { inputFile: good.ova });
      expect(next.exitCode).toBe(0);
      expect(next.stderr.split('\n')).toEqual(
        expect.arrayContaining([
          `p2v-import: removed ${ownerless}, left by an import that is no longer running`,
          `p2v-import: removed ${dead}, left by an import that is no longer running`,
        ]),
      );
      expect(await exists(dead)).toBe(false);
      expect(await exists(ownerless)).toBe(false);
      expect(await exists(join(staging, livePartial!))).toBe(true);
      expect(await exists(join(staging, 'notes.txt'))).toBe(true);

      // The live import still completes afterwards.
      live.child.stdin.end(bytes.subarray(bytes.length >> 1));
      expect((await live.exit).code).toBe(0);
      expect(await committed(staging)).toHaveLength(4);

      // --remove takes a committed copy away, by the id --list shows.
      const rm = await runImport(['--staging', staging, '--remove', db1!]);
      expect(rm.stderr).toBe(`p2v-import: removed ${join(staging, db1!)}`);
      expect(rm.exitCode).toBe(0);
      expect(await exists(join(staging, db1!))).toBe(false);
    });
  });

  it('--remove refuses anything that is not an import directory', async () => {
    await withTmpDir('hk-rm', async (dir) => {
      const staging = join(dir, 'staging');
      await mkdir(staging);
      const victim = join(dir, 'victim');
      await mkdir(victim);
      await writeFile(join(victim, 'precious'), 'keep me\n');
      await symlink(victim, join(staging, '20240101T000000Z-00000001'));
      const cases: [string, string, string][] = [
        [
          '../victim',
          '"../victim" is not an import id',
          'give an ID as p2v-import --list shows it, e.g. 20261122T031718Z-1a2b3c4d',
        ],
        [
          'notes',
          '"notes" is not an import id',
          'give an ID as p2v-import --list shows it, e.g. 20261122T031718Z-1a2b3c4d',
        ],
        [
          '20240101T000000Z-00000001',
          `${join(staging, '20240101T000000Z-00000001')} is not an import directory (it is a symlink); not removed`,
          'remove it by hand if it should not be there',
        ],
        ['20240101T000000Z-00000002', `no import 20240101T000000Z-00000002 in ${staging}`, 'see p2v-import --list'],
      ];
      for (const [id, error, hint] of cases) {
        const r = await runImport(['--staging', staging, '--remove', id]);
        expect(r.stderr, id).toBe(`p2v-import: ${error}\np2v-import: hint: ${hint}`);
        expect(r.exitCode).toBe(2);
      }
      expect(await readFile(join(victim, 'precious'), 'utf8')).toBe('keep me\n');
      expect((await lstat(join(staging, '20240101T000000Z-00000001'))).isSymbolicLink()).toBe(true);
    });
  });

  it('keeps a --keep-partial import out of start-up cleaning', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('hk-kept', async (dir) => {
      const good = await makeGoodOva(dir);
      const bytes = await readFile(good.ova);
      const staging = join(dir, 'staging');
      const cut = await runImport(['--staging', staging, '--keep-partial'], {
        input: bytes.subarray(0, bytes.length - 3000),
      });
      expect(cut.exitCode).toBe(3);
      const [kept] = await readdir(staging);
      expect(kept).toMatch(/\.partial$/);
      const ok = await runImport(['--staging', staging, '-q'], { inputFile: good.ova });
      expect(ok.exitCode).toBe(0);
      expect(await exists(join(staging, kept!))).toBe(true);
      const list = await runImport(['--staging', staging, '--list']);
      expect(rows(list.stdout).find((r) => r[0] === kept)![5]).toBe('partial-kept');
    });
  });

  it('--max-staging counts what is already staged plus the new disks, before any data', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('hk-quota', async (dir) => {
      const good = await makeGoodOva(dir, { sizes: [8 * MiB] });
      const staging = join(dir, 'staging');
      const first = await runImport(['--staging', staging, '-q'], { inputFile: good.ova });
      expect(first.exitCode).toBe(0);
      const [kept] = await committed(staging);
      const held = Number((await execa('du', ['-s', '-B1', staging])).stdout.split('\t')[0]);
      // The descriptor gives no populatedSize: the new disk counts at its capacity, 8 MiB.
      const tooSmall = held + 8 * MiB - 1;
      const refused = await runImport(
        ['--staging', staging, '--max-staging', String(tooSmall), '--raw', join(dir, 'raw')],
        {
          inputFile: good.ova,
        },
      );
      expect(refused.stderr.split('\n')[0]).toMatch(
        new RegExp(
          `^p2v-import: staging ${staging} holds .* \\(\\d+ bytes\\) and the disks need 8\\.0 MiB \\(8388608 bytes\\), more than --max-staging .* \\(${tooSmall} bytes\\)$`,
        ),
      );
      expect(refused.stderr.split('\n')[1]).toBe(
        'p2v-import: hint: remove staged copies you no longer need (p2v-import --list, --remove ID) or raise --max-staging',
      );
      expect(refused.exitCode).toBe(3);
      expect(await readdir(staging)).toEqual([kept]);
      expect(await readdir(join(dir, 'raw')).catch(() => [])).toEqual([]);
      // Room for it once the old copy is gone.
      expect((await runImport(['--staging', staging, '--remove', kept!])).exitCode).toBe(0);
      const fits = await runImport(
        ['--staging', staging, '--max-staging', String(tooSmall), '--raw', join(dir, 'raw'), '-q'],
        {
          inputFile: good.ova,
        },
      );
      expect(fits.stderr).toBe('');
      expect(fits.exitCode).toBe(0);
    });
  });

  it('--idle-timeout ends an import whose input stops sending and clears its partial dir', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('hk-idle', async (dir) => {
      const good = await makeGoodOva(dir, { sizes: [8 * MiB] });
      const bytes = await readFile(good.ova);
      const staging = join(dir, 'staging');
      const started = Date.now();
      const run = startImport(
        ['--staging', staging, '--ganeti-export', join(dir, 'exports'), '--idle-timeout', '2s'],
        bytes.subarray(0, bytes.length >> 1),
      );
      await waitFor('the partial dir', async () => (await claimedPartials(staging)).length === 1);
      const { code } = await run.exit;
      const took = Date.now() - started;
      expect(run.stderr()).toBe(
        'p2v-import: no data arrived for 2s (--idle-timeout): import abandoned\n' +
          'p2v-import: hint: the sender or the link stalled: look at the sending side, then send the OVA again\n',
      );
      expect(code).toBe(1);
      expect(took).toBeGreaterThanOrEqual(2000);
      expect(took).toBeLessThan(15_000);
      expect(await readdir(staging)).toEqual([]);
      expect(await readdir(join(dir, 'exports')).catch(() => [])).toEqual([]);
      run.child.stdin.destroy();
    });
  });

  it('--from-staged writes the outputs from a kept copy, and keeps it while an output fails', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('hk-from', async (dir) => {
      const good = await makeGoodOva(dir, { sizes: [4 * MiB, 2 * MiB] });
      const staging = join(dir, 'staging');
      const exports = join(dir, 'exports');
      // An import with no outputs keeps its verified copy: that copy is the result.
      const staged = await runImport(['--staging', staging, '-q'], { inputFile: good.ova });
      expect(staged.exitCode).toBe(0);
      const [id] = await committed(staging);

      // Refusals, none of which touches the copy.
      const refusals: [string[], string][] = [
        [['--from-staged', id!], '--from-staged needs at least one output'],
        [
          ['--from-staged', `${id!}.partial`, '--raw', join(dir, 'raw')],
          `"${id!}.partial" is not the id of a complete import`,
        ],
        [['--from-staged', '../x', '--raw', join(dir, 'raw')], '"../x" is not the id of a complete import'],
        [
          ['--from-staged', id!, '--raw', join(dir, 'raw'), good.ova],
          `--from-staged reads no OVA; refused "${good.ova}"`,
        ],
        [['--from-staged', id!, '--list'], '--list and --from-staged cannot be combined'],
      ];
      for (const [args, error] of refusals) {
        const r = await runImport(['--staging', staging, ...args]);
        expect(r.stderr.split('\n')[0], args.join(' ')).toBe(`p2v-import: ${error}`);
        expect(r.exitCode).toBe(2);
      }
      expect(await committed(staging)).toEqual([id]);

      // An export in the way: refused, and the copy stays for the next try.
      await mkdir(join(exports, 'test-vm'), { recursive: true });
      await writeFile(join(exports, 'test-vm', 'old'), 'an earlier export\n');
      const blocked = await runImport(['--staging', staging, '--from-staged', id!, '--ganeti-export', exports]);
      const [blockedError, blockedHint] = blocked.stderr.split('\n');
      expect(blockedError).toBe(`p2v-import: ${join(exports, 'test-vm')} already exists`);
      expect(blockedHint).toMatch(/^p2v-import: hint: .*the staged import stays in /);
      expect(blockedHint!.endsWith(`the staged import stays in ${join(staging, id!)}`)).toBe(true);
      expect(blocked.exitCode).toBe(1);
      expect(await readFile(join(exports, 'test-vm', 'old'), 'utf8')).toBe('an earlier export\n');
      expect(await committed(staging)).toEqual([id]);

      // Clear the way, then write the export from staging, keeping the copy once more.
      await execa('rm', ['-rf', join(exports, 'test-vm')]);
      const kept = await runImport([
        '--staging',
        staging,
        '--from-staged',
        id!,
        '--ganeti-export',
        exports,
        '--keep-staged',
        '--progress-fd',
        '1',
      ]);
      expect(kept.stderr).toBe(
        [`p2v-import: output: ${join(staging, id!)}`, `p2v-import: output: ${join(exports, 'test-vm')}`].join('\n'),
      );
      expect(kept.exitCode).toBe(0);
      const events = kept.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(events).toEqual([
        { type: 'phase', phase: `write ganeti-export ${exports}`, state: 'start' },
        { type: 'phase', phase: `write ganeti-export ${exports}`, state: 'end', ok: true, seconds: expect.any(Number) },
      ]);
      for (const [i, raw] of good.raws.entries()) {
        await execa('qemu-img', [
          'compare',
          '-q',
          '-f',
          'raw',
          '-F',
          'raw',
          raw,
          join(exports, 'test-vm', `disk${i}.raw`),
        ]);
      }
      expect(await readFile(join(exports, 'test-vm', 'config.ini'), 'utf8')).toContain('disk_count = 2\n');
      expect(await committed(staging)).toEqual([id]);
      // No owner is left behind on a kept copy: it is not in use.
      expect(await readdir(join(staging, id!))).not.toContain('owner');

      // Without --keep-staged the copy goes once the outputs are written.
      const last = await runImport([
        '--staging',
        staging,
        '--from-staged',
        id!,
        '--raw',
        join(dir, 'raw'),
        '--name',
        'web2',
      ]);
      expect(last.stderr).toBe(
        [
          `p2v-import: output: ${join(dir, 'raw', 'web2-disk0.raw')}`,
          `p2v-import: output: ${join(dir, 'raw', 'web2-disk1.raw')}`,
        ].join('\n'),
      );
      expect(last.exitCode).toBe(0);
      await execa('qemu-img', [
        'compare',
        '-q',
        '-f',
        'raw',
        '-F',
        'raw',
        good.raws[1]!,
        join(dir, 'raw', 'web2-disk1.raw'),
      ]);
      expect(await readdir(staging)).toEqual([]);
    });
  });
});
