// The direct path without the RAM-booted target: `p2v-export --direct` over a
// real sshd into `p2v-import --device`, the "device" being a file full of junk.
// The disk is decoded onto it as it arrives, and nothing of the junk shows
// through where the source had holes. (--power-off is never used here.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildSampleDisk } from '../../lib/sample-disk.js';
import { cliArgv } from '../helpers/cli.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { sha256File } from '../e2e/support.js';

let dir: string;
let sshd: Sshd;

beforeAll(async () => {
  needRoot();
  await needPrograms('nbdkit', 'nbdfuse', 'sshd', 'fallocate', 'losetup', 'e2fsck', 'mount');
  dir = await mkdtemp(join(tmpdir(), 'p2v-direct-'));
  sshd = await startSshd(dir, (pub) => pub);
});
afterAll(async () => {
  await sshd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const exportArgs = (sample: string) => ['--disk', sample, '--hostname', 'direct', '--cpus', '1', '--memory', '256M'];

describe('p2v-export --direct', () => {
  it('writes disk 0 onto the target disk as it arrives, holes zeroed, no staged copy', async () => {
    const sample = await buildSampleDisk({ path: join(dir, 'src.img'), sizeMiB: 96, swapMiB: 8, fillerMiB: 2 });
    const target = join(dir, 'target-disk');
    await writeFile(target, randomBytes(sample.size + (4 << 20)));
    const staging = join(dir, 'staging');
    await mkdir(staging);
    const [node, exp] = cliArgv('p2v-export');
    const importer = cliArgv('p2v-import').join(' ');
    const r = await execa(
      node!,
      [
        exp!,
        ...exportArgs(sample.path),
        '--direct',
        `root@127.0.0.1:${sshd.port}`,
        '--key',
        sshd.clientKey,
        '--known-hosts',
        sshd.knownHosts,
        '--remote-command',
        `${importer} --staging ${staging} --device ${target} --verbose`,
      ],
      { reject: false, stdin: 'ignore' },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain(`disk 0 was decoded onto ${target} as it arrived`);
    expect(await readdir(staging)).toEqual([]);

    // Junk must not show through where the source has zeros: the gap between the MBR and the first partition.
    const fh = await open(target, 'r');
    const gap = Buffer.alloc(sample.rootOffset - 512);
    await fh.read(gap, 0, gap.length, 512);
    const tail = Buffer.alloc(4096);
    await fh.read(tail, 0, tail.length, sample.size);
    await fh.close();
    expect(gap.equals(Buffer.alloc(gap.length))).toBe(true);
    expect(tail.equals(Buffer.alloc(tail.length))).toBe(false); // past the disk: left alone
    // The root filesystem arrived whole: it checks clean and holds the live files.
    const loop = (
      await execa('losetup', [
        '--find',
        '--show',
        '--read-only',
        '-o',
        String(sample.rootOffset),
        '--sizelimit',
        String(sample.rootSize),
        target,
      ])
    ).stdout.trim();
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    try {
      await execa('e2fsck', ['-fn', loop]);
      await execa('mount', ['-o', 'ro', loop, mnt]);
      try {
        for (const [guestPath, digest] of Object.entries(sample.liveFileDigests)) {
          expect(
            createHash('sha256')
              .update(await readFile(join(mnt, guestPath)))
              .digest('hex'),
            guestPath,
          ).toBe(digest);
        }
        expect((await readFile(join(mnt, 'etc/hostname'), 'utf8')).trim()).toBe('direct');
      } finally {
        await execa('umount', [mnt]);
      }
    } finally {
      await execa('losetup', ['-d', loop]);
    }
  });

  it('leaves the device untouched, and says so, when the stream fails before any disk data', async () => {
    const target = join(dir, 'untouched-disk');
    const junk = randomBytes(1 << 20);
    await writeFile(target, junk);
    const staging = join(dir, 'staging2');
    await mkdir(staging);
    const [node, imp] = cliArgv('p2v-import');
    const r = await execa(node!, [imp!, '--staging', staging, '--device', target], { reject: false, input: '' });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).not.toContain('incomplete image');
    expect((await readFile(target)).equals(junk)).toBe(true);
  });

  it("a key the target does not hold is refused before any work, with the direct path's own message", async () => {
    const sample = await buildSampleDisk({ path: join(dir, 'src-key.img'), sizeMiB: 96, fillerMiB: 1 });
    const wrong = join(dir, 'wrong_key');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrong]);
    const [node, exp] = cliArgv('p2v-export');
    const r = await execa(
      node!,
      [
        exp!,
        ...exportArgs(sample.path),
        '--direct',
        `root@127.0.0.1:${sshd.port}`,
        '--key',
        wrong,
        '--known-hosts',
        sshd.knownHosts,
      ],
      { reject: false, stdin: 'ignore' },
    );
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(
      `p2v-export: the target root@127.0.0.1 refused the key ${wrong}: its public half is not in root's authorized_keys there`,
    );
    expect(r.stderr).toMatch(/hint: use the key whose \.pub the instance's authorized_key_url serves/);
    expect(r.stderr).not.toMatch(/overlay…/);
  });

  it('learns the size of the target disk, fits disk 0 to it, and refuses a machine whose data does not fit before a byte reaches the target', async () => {
    const sample = await buildSampleDisk({ path: join(dir, 'src-big.img'), sizeMiB: 96, fillerMiB: 1 });
    const small = join(dir, 'small-target');
    await execa('truncate', ['-s', '64M', small]);
    const loop = (await execa('losetup', ['--find', '--show', small])).stdout.trim();
    try {
      const [node, exp] = cliArgv('p2v-export');
      const run = (extra: string[]) =>
        execa(
          node!,
          [
            exp!,
            ...exportArgs(sample.path),
            ...extra,
            '--direct',
            `root@127.0.0.1:${sshd.port}`,
            '--key',
            sshd.clientKey,
            '--known-hosts',
            sshd.knownHosts,
            '--target-device',
            loop,
          ],
          { reject: false, stdin: 'ignore' },
        );
      const before = await sha256File(small);
      const r = await run([]);
      expect(r.exitCode, r.stderr).toBe(3);
      expect(r.stderr).toContain(`the target's disk is 64.0 MiB: disk 0 is fitted to it`);
      expect(r.stderr).toMatch(
        new RegExp(`^p2v-export: disk 0 \\(.*src-big\\.img\\): the disk does not fit in ${64 * 1048576} bytes`, 'm'),
      );
      expect(r.stderr).not.toMatch(/stream…/);
      expect(await sha256File(small)).toBe(before);
      // A --target-size the target's disk cannot hold is refused at once.
      const big = await run(['--target-size', '80M']);
      expect(big.exitCode).toBe(3);
      expect(big.stderr).toContain(
        `p2v-export: --target-size 80.0 MiB is larger than the target's disk on root@127.0.0.1 (64.0 MiB, ${64 * 1048576} bytes)`,
      );
      expect(big.stderr).not.toMatch(/overlay…/);
    } finally {
      await execa('losetup', ['-d', loop]);
    }
  });

  it('refuses a second disk', async () => {
    const [node, exp] = cliArgv('p2v-export');
    const r = await execa(node!, [exp!, '--disk', 'a', '--disk', 'b', '--direct', 'root@127.0.0.1'], {
      reject: false,
      stdin: 'ignore',
    });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(
      'p2v-export: --direct takes one disk: the target instance has one disk to receive it',
    );
  });
});
