// `p2v-export --ssh` against a real OpenSSH server whose key is restricted to
// a forced p2v-import: the machine arrives as the same Ganeti export as with
// `p2v-export --ovf | p2v-import`, and a key the stager does not know is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildSampleDisk } from '../../lib/sample-disk.js';
import { cliArgv } from '../helpers/cli.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';

let dir: string;
let sshd: Sshd;

beforeAll(async () => {
  needRoot();
  await needPrograms('nbdkit', 'nbdfuse', 'sshd', 'qemu-img');
  dir = await mkdtemp(join(tmpdir(), 'p2v-sshexp-'));
  await mkdir(join(dir, 'staging'));
  await mkdir(join(dir, 'exports'));
  const importer = cliArgv('p2v-import').join(' ');
  sshd = await startSshd(
    dir,
    (pub) => `command="${importer} --staging ${dir}/staging --ganeti-export ${dir}/exports",restrict ${pub}`,
  );
});
afterAll(async () => {
  await sshd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('p2v-export --ssh', () => {
  it('streams into the forced p2v-import and produces the Ganeti export', async () => {
    const sample = await buildSampleDisk({ path: join(dir, 'src.img'), sizeMiB: 128, swapMiB: 16, fillerMiB: 2 });
    const exp = cliArgv('p2v-export');
    const r = await execa(
      exp[0]!,
      [
        ...exp.slice(1),
        '--disk',
        sample.path,
        '--hostname',
        'viassh',
        '--cpus',
        '1',
        '--memory',
        '256M',
        '--ssh',
        `root@127.0.0.1:${sshd.port}`,
        '--key',
        sshd.clientKey,
        '--known-hosts',
        sshd.knownHosts,
      ],
      { reject: false, stdin: 'ignore' },
    );
    expect(r.stderr).toContain('p2v-export report');
    expect(r.exitCode).toBe(0);
    expect(await readdir(join(dir, 'exports'))).toEqual(['viassh']);
    const ini = await readFile(join(dir, 'exports', 'viassh', 'config.ini'), 'utf8');
    expect(ini).toContain('name = viassh');
    expect(ini).toContain('disk0_size = 128');
    const info = JSON.parse(
      (await execa('qemu-img', ['info', '--output=json', join(dir, 'exports', 'viassh', 'disk0.raw')])).stdout,
    );
    expect(info['virtual-size']).toBe(sample.size);
    // Nothing half-done left in staging.
    expect((await readdir(join(dir, 'staging'))).filter((n) => n.endsWith('.partial'))).toEqual([]);
  });

  it('refuses a stager whose host key is unknown, before any work', async () => {
    // A disk that passes the local checks (they come first), which no overlay ever opens.
    const disk = join(dir, 'unopened.img');
    await writeFile(disk, Buffer.alloc(1 << 20, 1));
    const exp = cliArgv('p2v-export');
    const r = await execa(
      exp[0]!,
      [
        ...exp.slice(1),
        '--disk',
        disk,
        '--ssh',
        `root@127.0.0.1:${sshd.port}`,
        '--key',
        sshd.clientKey,
        '--known-hosts',
        join(dir, 'empty'),
      ],
      {
        reject: false,
        stdin: 'ignore',
      },
    );
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^p2v-export: host key of 127\.0\.0\.1 \(SHA256:\S+\) is not in known_hosts$/m);
    expect(r.stderr).not.toContain('overlay');
  });
});

describe('p2v-export --ssh, receiver failing mid-stream', () => {
  it('stops with the receiver status instead of waiting on a full channel, and cleans up', async () => {
    const d = await mkdtemp(join(tmpdir(), 'p2v-sshfail-'));
    // A receiver that reads 1 MiB and gives up, like p2v-import refusing a disk.
    const failing = await startSshd(
      d,
      (pub) => `command="head -c 1048576 >/dev/null; echo refusing >&2; exit 5",restrict ${pub}`,
    );
    try {
      const sample = await buildSampleDisk({ path: join(d, 'src.img'), sizeMiB: 128, swapMiB: 8, fillerMiB: 24 });
      const exp = cliArgv('p2v-export');
      const r = await execa(
        exp[0]!,
        [
          ...exp.slice(1),
          '--disk',
          sample.path,
          '--compress-level',
          '0',
          '--ssh',
          `root@127.0.0.1:${failing.port}`,
          '--key',
          failing.clientKey,
          '--known-hosts',
          failing.knownHosts,
        ],
        { reject: false, stdin: 'ignore', timeout: 90_000, env: { TMPDIR: d } },
      );
      expect(r.timedOut).toBe(false);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain('refusing');
      expect(r.stderr).toMatch(/^p2v-export: the receiver on 127\.0\.0\.1 failed \(exit status 5\)$/m);
      const left = await execa('pgrep', ['-f', `file=${sample.path}`], { reject: false });
      expect(left.stdout).toBe('');
      expect((await readdir(d)).filter((n) => n.startsWith('p2v-export-'))).toEqual([]);
    } finally {
      await failing.stop();
      await rm(d, { recursive: true, force: true });
    }
  });
});
