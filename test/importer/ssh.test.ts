/**
 * p2v-import behind a real OpenSSH forced command on loopback: the key's
 * `command="…",restrict` decides everything; what the client types is only
 * read for an allow-list that can never move the output (pinned options and
 * housekeeping: forced-command.test.ts).
 */
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { cliArgv } from '../helpers/cli.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { startSshd } from '../helpers/sshd.js';
import { withTmpDir } from '../helpers/tmp.js';
import { makeGoodOva } from './fixtures.js';

describe('p2v-import as an SSH forced command', () => {
  it('imports what arrives on stdin and lets no client command escape', async () => {
    needRoot();
    await needPrograms('sshd', 'ssh', 'ssh-keygen', 'ssh-keyscan', 'qemu-img', 'tar');
    await withTmpDir('ssh', async (dir) => {
      const good = await makeGoodOva(dir);
      const staging = join(dir, 'srv', 'staging');
      const exports = join(dir, 'srv', 'exports');
      const [node, script] = cliArgv('p2v-import');
      const forced = `${node} ${script} --staging ${staging} --ganeti-export ${exports}`;
      await mkdir(join(dir, 'sshd'));
      const sshd = await startSshd(join(dir, 'sshd'), (pub) => `command="${forced}",restrict ${pub}`);
      try {
        const ssh = (cmd: string[], inputFile: string) =>
          execa(
            'ssh',
            [
              '-i',
              sshd.clientKey,
              '-p',
              String(sshd.port),
              '-o',
              'BatchMode=yes',
              '-o',
              `UserKnownHostsFile=${sshd.knownHosts}`,
              '-o',
              'LogLevel=ERROR',
              'root@127.0.0.1',
              ...cmd,
            ],
            { reject: false, inputFile, timeout: 60_000 },
          );

        const plain = await ssh([], good.ova);
        expect(plain.stderr).toBe(`p2v-import: output: ${join(exports, 'test-vm')}`);
        expect(plain.exitCode).toBe(0);
        expect(await readFile(join(exports, 'test-vm', 'config.ini'), 'utf8')).toContain('name = test-vm\n');
        await execa('qemu-img', [
          'compare',
          '-q',
          '-f',
          'raw',
          '-F',
          'raw',
          good.raws[0]!,
          join(exports, 'test-vm', 'disk0.raw'),
        ]);

        const named = await ssh(['p2v-import', '--name', 'web1', '-q'], good.ova);
        expect(named.stderr).toBe('');
        expect(named.exitCode).toBe(0);

        const evil = join(dir, 'evil');
        const attempts: [string[], string][] = [
          [['p2v-import', '--staging', evil, '--ganeti-export', evil], '--staging'],
          [['p2v-import', '--ova', join(evil, 'x.ova')], '--ova'],
          [['p2v-import', join(evil, 'input.ova')], join(evil, 'input.ova')],
          [['touch', join(evil, 'pwned')], 'touch'],
          [[`sh -c 'mkdir -p ${evil}'`], 'sh'],
        ];
        for (const [cmd, word] of attempts) {
          const r = await ssh(cmd, good.ova);
          expect(r.stderr.split('\n')[0], cmd.join(' ')).toBe(
            `p2v-import: the SSH key only allows --name NAME, --verbose, --quiet, --progress-fd 1, --version, --block-map NAME; refused "${word}"`,
          );
          expect(r.exitCode).toBe(2);
        }
        const badName = await ssh(['p2v-import', '--name', '../../evil'], good.ova);
        expect(badName.stderr.split('\n')[0]).toBe('p2v-import: invalid instance name "../../evil"');
        expect(badName.exitCode).toBe(2);

        expect(await readdir(dir)).not.toContain('evil');
        expect((await readdir(exports)).sort()).toEqual(['test-vm', 'web1']);
        expect(await readdir(staging)).toEqual([]);
      } finally {
        await sshd.stop();
      }
    });
  });
});
