/**
 * `p2v-export --ssh --delta` against a real OpenSSH server whose key is
 * forced to `p2v-import --name web1 --keep-base`: the first export finds no
 * base and is a full one; after files change on the source, the same command
 * fetches the map through the key (allowed for the pinned name only) and
 * sends a delta a fraction of the size, whose result equals a cold export.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeFiles, makeDataDisk } from '../../../bench/delta-image.js';
import { runPipe } from '../../../bench/delta-pipe.js';
import { cliArgv } from '../../helpers/cli.js';
import { needPrograms, needRoot } from '../../helpers/programs.js';
import { startSshd, type Sshd } from '../../helpers/sshd.js';

const MiB = 1024 * 1024;
let dir: string;
let sshd: Sshd;

beforeAll(async () => {
  needRoot();
  await needPrograms('nbdkit', 'nbdfuse', 'sshd', 'qemu-img', 'mkfs.ext4', 'cp');
  dir = await mkdtemp(join(tmpdir(), 'p2v-sshdelta-'));
  await mkdir(join(dir, 'staging'));
  const importer = cliArgv('p2v-import').join(' ');
  sshd = await startSshd(
    dir,
    (pub) => `command="${importer} --staging ${dir}/staging --keep-base --name web1 --raw ${dir}/out",restrict ${pub}`,
  );
});
afterAll(async () => {
  await sshd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function exportSsh(disk: string, name = 'web1') {
  const exp = cliArgv('p2v-export');
  const r = await execa(
    exp[0]!,
    [
      ...exp.slice(1),
      '--disk',
      disk,
      '--name',
      name,
      '--delta',
      '--ssh',
      `root@127.0.0.1:${sshd.port}`,
      '--key',
      sshd.clientKey,
      '--known-hosts',
      sshd.knownHosts,
    ],
    { reject: false, stdin: 'ignore' },
  );
  const sent = /sent (\d+) bytes/.exec(r.stderr);
  return { ...r, sent: sent ? Number(sent[1]) : NaN };
}

describe('p2v-export --ssh --delta', () => {
  it('sends a full export first, then only what changed, with the map fetched through the key', async () => {
    const disk = await makeDataDisk(join(dir, 'src.img'), 96 * MiB, 60, 200_000);
    const first = await exportSsh(disk.path);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/the stager has no base for web1 yet: sending a full export/);
    await rm(join(dir, 'out'), { recursive: true });

    const changed = await changeFiles(disk, 15);
    const second = await exportSsh(disk.path);
    expect(second.exitCode, second.stderr).toBe(0);
    expect(second.sent).toBeLessThan(changed * 1.5 + 256 * 1024);
    expect(second.sent).toBeLessThan(first.sent / 4);

    const cold = await runPipe(
      ['--disk', disk.path, '--name', 'web1', '--ovf', '--quiet'],
      ['--staging', join(dir, 's2'), '--raw', join(dir, 'cold'), '--quiet'],
    );
    expect(cold.importCode, cold.importStderr).toBe(0);
    const cmp = await execa('qemu-img', [
      'compare',
      '-f',
      'raw',
      '-F',
      'raw',
      join(dir, 'out', 'web1-disk0.raw'),
      join(dir, 'cold', 'web1-disk0.raw'),
    ]);
    expect(cmp.stdout).toMatch(/Images are identical/);
  });

  it('is refused a map of another name through the key', async () => {
    const r = await execa(
      'ssh',
      [
        '-p',
        String(sshd.port),
        '-i',
        sshd.clientKey,
        '-o',
        `UserKnownHostsFile=${sshd.knownHosts}`,
        '-o',
        'BatchMode=yes',
        'root@127.0.0.1',
        'p2v-import --block-map db2',
      ],
      { reject: false, encoding: 'buffer' },
    );
    expect(r.exitCode).toBe(2);
    expect(Buffer.from(r.stderr as Uint8Array).toString()).toMatch(
      /through this SSH key --block-map gives only the pinned machine's map; refused "--block-map db2"/,
    );
    expect((r.stdout as Uint8Array).length).toBe(0);
  });
});
