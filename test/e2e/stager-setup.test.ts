/**
 * The stager, set up by following docs/admin-guide.md section 2 literally:
 * its command lines are read from the page, given this test's user name,
 * directories and key in place of `p2v`, `/srv/p2v` and `AAAA…`, and run as
 * written, against a real OpenSSH server that logs users in the way Debian's
 * does (the user's own ~/.ssh/authorized_keys, StrictModes, PAM). Then the
 * README's pipe form sends the sample disk through it, and the refusals the
 * page promises are checked.
 *
 * Not run from the page: `apt-get install git`, `git clone`, `cd` and
 * `npm run setup` (the test runs in the checkout the global setup has just
 * built, which is what `npm run setup` ends with); the test checks they are
 * there.
 *
 * PATH, the one deliberate difference: on a stager the wrappers go to
 * /usr/local/bin, the first directory of the PATH Debian's sshd compiles in
 * for every session. A test must not write into the machine's /usr/local/bin,
 * so it adds `--bin-dir <tmp>/bin` and starts its sshd with
 * `SetEnv PATH=<tmp>/bin:/usr/local/bin:/usr/bin:/bin:/usr/games`, what
 * --setup-stager itself tells an admin to do for a --bin-dir off that PATH.
 * The forced command is still the bare word `p2v-import`, found by the
 * user's /bin/sh on sshd's PATH, exactly as on a stager.
 */
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { checkCheckoutUsable, SSHD_DEFAULT_PATH } from '../../importer/stager-setup.js';
import { buildSampleDisk } from '../../lib/sample-disk.js';
import { ROOT } from '../helpers/cli.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';

/** The code lines (indented or fenced) of one section of a markdown page, trimmed. */
async function codeLines(page: string, heading: RegExp): Promise<string[]> {
  const lines = (await readFile(join(ROOT, page), 'utf8')).split('\n');
  const start = lines.findIndex((l) => heading.test(l));
  expect(start, `${page}: no section ${heading}`).toBeGreaterThanOrEqual(0);
  const end = lines.findIndex((l, i) => i > start && /^#{1,2} /.test(l));
  const code: string[] = [];
  let fenced = false;
  for (const l of lines.slice(start + 1, end < 0 ? undefined : end)) {
    if (l.startsWith('```')) fenced = !fenced;
    else if (fenced || /^ {4,}\S/.test(l)) code.push(l.trim());
  }
  return code;
}

function theLine(lines: string[], what: string, test: (l: string) => boolean): string {
  const found = lines.filter(test);
  expect(found, `the admin guide's ${what}`).toHaveLength(1);
  return found[0]!;
}

/**
 * The checkout the guide's commands run in. The guide clones into /opt; CI
 * may clone somewhere an unprivileged account cannot reach (under /root),
 * where --setup-stager rightly refuses. Then the test does what the guide
 * tells an admin: it uses a copy in a world-readable place (hard links when
 * the filesystem allows: instant).
 */
let checkout = '';
async function usableCheckout(): Promise<string> {
  if (checkout) return checkout;
  let reachable = true;
  for (let d = ROOT; ; d = dirname(d)) {
    if (((await stat(d)).mode & 0o005) !== 0o005) reachable = false;
    if (d === dirname(d)) break;
  }
  if (reachable) return (checkout = ROOT);
  const copy = await mkdtemp('/var/tmp/p2v-checkout-');
  await chmod(copy, 0o755);
  const parts = ['bin', 'dist', 'node_modules', 'package.json', 'README.md', 'docs'].map((p) => join(ROOT, p));
  const linked = await execa('cp', ['-al', ...parts, copy], { reject: false });
  if (linked.exitCode !== 0) await execa('cp', ['-a', ...parts, copy]);
  return (checkout = copy);
}

afterAll(async () => {
  if (checkout && checkout !== ROOT) await rm(checkout, { recursive: true, force: true });
});

const bash = async (line: string, env: Record<string, string>) =>
  execa('bash', ['-o', 'pipefail', '-c', line], {
    cwd: await usableCheckout(),
    reject: false,
    env,
    timeout: 60_000,
    stdin: 'ignore',
  });

describe('the stager set up as the admin guide says', () => {
  it('takes the README pipe form through a real sshd, and nothing else', async () => {
    needRoot();
    await needPrograms(
      'sshd',
      'ssh',
      'ssh-keygen',
      'ssh-keyscan',
      'useradd',
      'userdel',
      'runuser',
      'nbdkit',
      'nbdfuse',
    );
    const guide = await codeLines('docs/admin-guide.md', /^## 2\. /);
    const readme = await codeLines('README.md', /^# ganeti-p2v/);
    expect(guide.some((l) => l.startsWith('git clone ') && l.endsWith(' /opt/ganeti-p2v'))).toBe(true);
    expect(guide).toContain('npm run setup');
    const echoLine = theLine(guide, 'key file line', (l) => l.startsWith("echo 'ssh-ed25519 AAAA… "));
    const setupLine = theLine(guide, 'setup command', (l) => l.includes('--setup-stager'));
    const fingerprintLine = theLine(guide, 'fingerprint command', (l) => l.startsWith('ssh-keygen -lf '));
    const keyLine = theLine(guide, 'authorized_keys line', (l) => l.startsWith('command="'));
    const ownerLine = theLine(guide, "owner's command", (l) => l.startsWith('p2v-export '));
    const refusedLine = theLine(guide, 'refused example', (l) => l.startsWith('$ ssh p2v@stager -- '));
    const refusedOutput = guide[guide.indexOf(refusedLine) + 1]!;
    const pipeLine = theLine(readme, 'README pipe form', (l) => l.startsWith('p2v-export ') && l.includes('| ssh '));
    // The owner's command is the README's, on the live image's disk name.
    const anyDisk = (l: string) => l.replace(/\/dev\/sd[a-zX]\b/, '/dev/sdX');
    expect(anyDisk(ownerLine)).toBe(anyDisk(pipeLine));

    const user = `p2vt${randomBytes(3).toString('hex')}`;
    const dir = await mkdtemp(join(tmpdir(), 'p2v-stager-'));
    // A stager's /srv is 0755; mkdtemp's 0700 would (rightly) be refused.
    await chmod(dir, 0o755);
    const staging = join(dir, 'srv', 'p2v');
    const exports = join(staging, 'exports');
    const binDir = join(dir, 'bin');
    const ownerKey = join(dir, 'owner_ed25519');
    let sshd: Sshd | undefined;
    try {
      await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'owner@machine', '-f', ownerKey]);
      const blob = (await readFile(ownerKey + '.pub', 'utf8')).split(' ')[1]!;
      await mkdir(join(dir, 'sshd'));
      sshd = await startSshd(join(dir, 'sshd'), null, {
        systemAccounts: true,
        sessionPath: `${binDir}:${SSHD_DEFAULT_PATH}`,
      });
      const ssh = `ssh -i ${ownerKey} -p ${sshd.port} -o BatchMode=yes -o UserKnownHostsFile=${sshd.knownHosts} -o LogLevel=ERROR`;
      const stager = (line: string) =>
        line
          .replaceAll('AAAA…', blob)
          .replaceAll('/srv/p2v', staging)
          .replaceAll('/root/owner.pub', join(dir, 'owner.pub'))
          .replaceAll('--user p2v ', `--user ${user} `)
          .replaceAll('/etc/ssh/ssh_host_ed25519_key.pub', join(dir, 'sshd', 'host_ed25519.pub'));
      const owner = (line: string) =>
        line.replaceAll('ssh p2v@stager', `${ssh} ${user}@127.0.0.1`).replace(/\/dev\/sd[a-zX]/, join(dir, 'src.img'));
      const env = { PATH: `${dirname(process.execPath)}:${process.env.PATH}` };

      // The admin's part.
      expect((await bash(stager(echoLine), env)).exitCode).toBe(0);
      const setup = `${stager(setupLine)} --bin-dir ${binDir}`;
      const first = await bash(setup, env);
      expect(first.stderr).not.toMatch(/error|internal/);
      expect(first.exitCode).toBe(0);
      expect(first.stdout).toBe(stager(keyLine));
      const home = (await execa('getent', ['passwd', user])).stdout.split(':')[5]!;
      const uid = Number((await execa('id', ['-u', user])).stdout);
      const authorizedKeys = join(home, '.ssh', 'authorized_keys');
      expect(await readFile(authorizedKeys, 'utf8')).toBe(stager(keyLine) + '\n');
      for (const [p, mode] of [
        [join(home, '.ssh'), 0o700],
        [authorizedKeys, 0o600],
        [staging, 0o750],
        [exports, 0o750],
      ] as const) {
        const st = await lstat(p);
        expect([p, st.uid, st.mode & 0o7777]).toEqual([p, uid, mode]);
      }
      // Twice is harmless: same line, the key not added again.
      const again = await bash(setup, env);
      expect(again.exitCode).toBe(0);
      expect(again.stdout).toBe(first.stdout);
      expect(await readFile(authorizedKeys, 'utf8')).toBe(stager(keyLine) + '\n');
      // Without --key: the line to paste, with the page's placeholder for the key.
      const toPaste = await bash(setup.replace(/ --key \S+/, ''), env);
      expect(toPaste.exitCode).toBe(0);
      expect(toPaste.stdout).toBe(stager(keyLine).replace(blob, 'AAAA…'));
      // The fingerprint handed over is the one the owner's ssh will see.
      const given = (await bash(stager(fingerprintLine), env)).stdout.split(' ')[1];
      const seen = await execa('sh', ['-c', `ssh-keyscan -p ${sshd.port} 127.0.0.1 2>/dev/null | ssh-keygen -lf -`]);
      expect(given).toMatch(/^SHA256:/);
      expect(seen.stdout.split(' ')[1]).toBe(given);

      // The owner's part: the README's pipe form, as written.
      const sample = await buildSampleDisk({ path: join(dir, 'src.img'), sizeMiB: 128, swapMiB: 16, fillerMiB: 2 });
      const sent = await bash(owner(pipeLine), { PATH: `${binDir}:${env.PATH}` });
      expect(sent.stderr).toContain(`p2v-import: output: ${join(exports, 'web1')}`);
      expect(sent.exitCode).toBe(0);
      const ini = await readFile(join(exports, 'web1', 'config.ini'), 'utf8');
      expect(ini).toContain('name = web1\n');
      expect(ini).toContain('disk0_dump = disk0.raw\n');
      expect(ini).toContain('disk0_size = 128\n');
      const dump = await stat(join(exports, 'web1', 'disk0.raw'));
      expect([dump.size, dump.uid]).toEqual([sample.size, uid]);
      expect((await stat(join(exports, 'web1'))).uid).toBe(uid);

      // What the page says is refused, is.
      const refused = await bash(owner(refusedLine.slice(2)).replace('< web1.ova', '< /dev/null'), env);
      const expected = new RegExp('^' + refusedOutput.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace('…', '.*') + '$');
      expect(refused.stderr.split('\n')[0]).toMatch(expected);
      expect(refused.exitCode).toBe(2);
      // Without `--`, ssh takes --staging for one of its own options.
      const bare = await bash(`${ssh} ${user}@127.0.0.1 --staging /etc < /dev/null`, env);
      expect(bare.exitCode).toBe(255);
      // Not as root: one line, nothing done.
      const unprivileged = await execa(
        'runuser',
        ['-u', user, '--', join(binDir, 'p2v-import'), '--setup-stager', '--user', 'x', '--staging', join(dir, 'y')],
        { reject: false, cwd: '/' },
      );
      expect(unprivileged.stderr).toMatch(/^p2v-import: --setup-stager must run as root[^\n]*$/);
      expect(unprivileged.exitCode).toBe(2);
      await expect(lstat(join(dir, 'y'))).rejects.toThrow(/ENOENT/);
    } finally {
      await sshd?.stop();
      const del = await execa('userdel', ['-r', user], { reject: false });
      await rm(dir, { recursive: true, force: true });
      expect(del.stderr.replace(/^userdel: \S+ mail spool \(\S+\) not found\n?/m, '')).toBe('');
    }
  });

  it('refuses, before changing anything, a checkout the user cannot read (one under /root)', async () => {
    needRoot();
    const dir = await mkdtemp(join(tmpdir(), 'p2v-stager-'));
    try {
      // A built checkout's shape, in a 0700 directory like /root.
      const checkout = join(dir, 'root', 'ganeti-p2v');
      for (const d of ['bin', 'dist/importer', 'node_modules']) await mkdir(join(checkout, d), { recursive: true });
      for (const f of ['bin/p2v-import.js', 'bin/entry.js', 'dist/importer/cli.js', 'package.json'])
        await writeFile(join(checkout, f), '');
      await chmod(dir, 0o755);
      await chmod(join(dir, 'root'), 0o700);
      await expect(checkCheckoutUsable(checkout, process.execPath, 'p2v')).rejects.toThrow(
        `user p2v cannot read the checkout: ${join(dir, 'root')} is mode 0700 and owned by root`,
      );
      await chmod(join(dir, 'root'), 0o755);
      await expect(checkCheckoutUsable(checkout, process.execPath, 'p2v')).resolves.toBeUndefined();
      await rm(join(checkout, 'dist'), { recursive: true });
      await expect(checkCheckoutUsable(checkout, process.execPath, 'p2v')).rejects.toThrow(`${checkout} is not built`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
