/**
 * The forced command's options are the admin's and final, tried through a
 * real OpenSSH server: a client word may only add what the forced command
 * left open, housekeeping is refused to clients of the key, and the client
 * can ask for JSON progress on its own stdout.
 */
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { cliArgv, ROOT } from '../helpers/cli.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { startSshd } from '../helpers/sshd.js';
import { withTmpDir } from '../helpers/tmp.js';
import { makeGoodOva, MiB, runImport } from './fixtures.js';

const HINT_PINNED = 'p2v-import: hint: leave it out: the staging host decides it for this key';

describe('p2v-import forced command: pinned options', () => {
  it('refuses a client option the forced command set, and lets the client add the others', async () => {
    needRoot();
    await needPrograms('sshd', 'ssh', 'ssh-keygen', 'ssh-keyscan', 'qemu-img', 'tar');
    await withTmpDir('pinned', async (dir) => {
      const good = await makeGoodOva(dir, { sizes: [4 * MiB, 1 * MiB] });
      const staging = join(dir, 'srv', 'staging');
      const exports = join(dir, 'srv', 'exports');
      const [node, script] = cliArgv('p2v-import');
      const base = `${node} ${script} --staging ${staging} --ganeti-export ${exports}`;
      const sshdDir = join(dir, 'sshd');
      await mkdir(sshdDir);
      const sshd = await startSshd(sshdDir, (pub) => `command="${base} --name web1",restrict ${pub}`);
      const authorize = async (forced: string) =>
        writeFile(join(sshdDir, 'authorized_keys'), `command="${forced}",restrict ${sshd.clientKeyPub}\n`);
      const ssh = (cmd: string[], inputFile = good.ova) =>
        execa(
          'ssh',
          [
            ...['-i', sshd.clientKey, '-p', String(sshd.port), '-o', 'BatchMode=yes'],
            ...['-o', `UserKnownHostsFile=${sshd.knownHosts}`, '-o', 'LogLevel=ERROR', 'root@127.0.0.1'],
            // "--": the client's words go to the stager, not to ssh itself.
            '--',
            ...cmd,
          ],
          { reject: false, inputFile, timeout: 60_000 },
        );
      try {
        // --name pinned: the client's own --name is refused, in either spelling, before a byte is read.
        for (const [cmd, words] of [
          [['--name', 'other'], '--name other'],
          [['p2v-import', '--name=other', '-q'], '--name=other'],
        ] as const) {
          const r = await ssh([...cmd]);
          expect(r.stderr, cmd.join(' ')).toBe(
            `p2v-import: --name is set by the staging host's forced command; refused "${words}"\n${HINT_PINNED}`,
          );
          expect(r.exitCode).toBe(2);
        }
        expect(await readdir(exports).catch(() => [])).toEqual([]);
        // What the admin left open (-q) the client may add; the pinned name is used.
        const quiet = await ssh(['-q']);
        expect(quiet.stderr).toBe('');
        expect(quiet.exitCode).toBe(0);
        expect(await readdir(exports)).toEqual(['web1']);
        expect(await readFile(join(exports, 'web1', 'config.ini'), 'utf8')).toContain('name = web1\n');

        // --progress pinned by the admin: the client cannot switch JSON progress on.
        await authorize(`${base} --progress none`);
        const noProgress = await ssh(['--progress-fd', '1']);
        expect(noProgress.stderr).toBe(
          `p2v-import: --progress is set by the staging host's forced command; refused "--progress-fd 1"\n${HINT_PINNED}`,
        );
        expect(noProgress.exitCode).toBe(2);
        expect(noProgress.stdout).toBe('');

        // Open: JSON lines for every phase on the client's stdout, the log alone on stderr.
        await authorize(base);
        const json = await ssh(['--progress-fd', '1', '--name', 'web2']);
        expect(json.stderr).toBe(`p2v-import: output: ${join(exports, 'web2')}`);
        expect(json.exitCode).toBe(0);
        const events = json.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        const phaseEvents = events
          .filter((e) => e.type === 'phase')
          .map((e) => `${String(e.phase)} ${String(e.state)}`);
        expect(phaseEvents).toEqual([
          'receive start',
          'receive end',
          `write ganeti-export ${exports} start`,
          `write ganeti-export ${exports} end`,
        ]);
        for (const e of events.filter((e) => e.type === 'phase' && e.state === 'end')) expect(e.ok).toBe(true);
        for (const [disk, size] of [
          [0, 4 * MiB],
          [1, 1 * MiB],
        ] as const) {
          const meter = events.filter((e) => e.type === 'progress' && e.phase === `receiving disk ${disk}`);
          expect(meter.length, `disk ${disk}`).toBeGreaterThan(0);
          // The descriptor gives no ovf:size, so the total is unknown (null) rather than guessed.
          for (const m of meter) expect(m).toMatchObject({ unit: 'bytes', total: null, rate: expect.any(Number) });
          const last = meter.at(-1)!;
          expect(last.final).toBe(true);
          // The member's bytes: the compressed VMDK, more than nothing and less than the disk's capacity.
          expect(last.done as number).toBeGreaterThan(0);
          expect(last.done as number).toBeLessThan(size);
        }

        for (const fd of ['2', '3']) {
          const r = await ssh(['--progress-fd', fd]);
          expect(r.stderr.split('\n')[0]).toBe(
            `p2v-import: through the SSH key --progress-fd takes only 1; refused "--progress-fd ${fd}"`,
          );
          expect(r.exitCode).toBe(2);
        }

        const version = await ssh(['--version']);
        const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
        expect(version.stdout).toBe(`p2v-import ${pkg.version}`);
        expect(version.exitCode).toBe(0);
      } finally {
        await sshd.stop();
      }
    });
  });

  it('refuses housekeeping to a client of the key: no listing or removing other imports', async () => {
    needRoot();
    await needPrograms('sshd', 'ssh', 'ssh-keygen', 'ssh-keyscan', 'qemu-img', 'tar');
    await withTmpDir('pinned-hk', async (dir) => {
      const good = await makeGoodOva(dir);
      const staging = join(dir, 'srv', 'staging');
      const exports = join(dir, 'srv', 'exports');
      // Someone else's machine, kept in staging on the staging host.
      expect(
        (await runImport(['--staging', staging, '--name', 'secret1', '-q'], { inputFile: good.ova })).exitCode,
      ).toBe(0);
      const [id] = await readdir(staging);
      const [node, script] = cliArgv('p2v-import');
      await mkdir(join(dir, 'sshd'));
      const sshd = await startSshd(
        join(dir, 'sshd'),
        (pub) => `command="${node} ${script} --staging ${staging} --ganeti-export ${exports}",restrict ${pub}`,
      );
      try {
        const ssh = (cmd: string[]) =>
          execa(
            'ssh',
            [
              ...['-i', sshd.clientKey, '-p', String(sshd.port), '-o', 'BatchMode=yes'],
              ...['-o', `UserKnownHostsFile=${sshd.knownHosts}`, '-o', 'LogLevel=ERROR', 'root@127.0.0.1'],
              // "--": the client's words go to the stager, not to ssh itself.
              '--',
              ...cmd,
            ],
            { reject: false, inputFile: good.ova, timeout: 60_000 },
          );
        for (const [cmd, flag, word] of [
          [['--list'], '--list', '--list'],
          [['p2v-import', '--remove', id!], '--remove', '--remove'],
          [['--remove=' + id!], '--remove', '--remove=' + id!],
          [['--from-staged', id!, '--name', 'mine'], '--from-staged', '--from-staged'],
        ] as const) {
          const r = await ssh([...cmd]);
          expect(r.stderr, cmd.join(' ')).toBe(
            `p2v-import: ${flag} is for the staging host's admin, not through the SSH key; refused "${word}"\n` +
              "p2v-import: hint: a key may be shared: run housekeeping on the staging host itself (see docs/importer.md, 'Housekeeping')",
          );
          expect(r.stdout).toBe('');
          expect(r.exitCode).toBe(2);
        }
        expect(await readdir(staging)).toEqual([id]);
        expect(await readdir(exports).catch(() => [])).toEqual([]);
        // The admin, on the staging host itself, still sees it.
        const list = await runImport(['--staging', staging, '--list']);
        expect(list.stdout).toContain(`${id!}  secret1`);
      } finally {
        await sshd.stop();
      }
    });
  });
});
