/**
 * The p2v-target Ganeti OS definition without installing anything: script
 * syntax, parameter checks (verify, and create refusing before it touches the
 * disk), the unsupported import/export, and the boot-time key installer run
 * on a fake root. The real install + RAM boot is p2v-target.slow.test.ts.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { needPrograms } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';

const OS_DIR = fileURLToPath(new URL('../../ganeti-os/p2v-target', import.meta.url));
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl p2v@example';
const SCRIPTS = ['create', 'import', 'export', 'rename', 'verify'];

function osScript(script: string, env: Record<string, string | undefined>, args: string[] = []) {
  // Ganeti does not clean the environment, but tests must not inherit OSP_* by accident.
  const base: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    OS_API_VERSION: '20',
    OS_NAME: 'p2v-target',
    OS_VARIANT: 'default',
  };
  const merged: Record<string, string> = { ...base };
  for (const [k, v] of Object.entries(env))
    if (v === undefined) delete merged[k];
    else merged[k] = v;
  return execa(join(OS_DIR, script), args, { reject: false, env: merged, extendEnv: false });
}

describe('p2v-target OS definition', () => {
  it('has the files Ganeti needs, all valid POSIX sh', async () => {
    await needPrograms('dash');
    expect((await readFile(join(OS_DIR, 'ganeti_api_version'), 'utf8')).trim()).toBe('20');
    expect((await readFile(join(OS_DIR, 'variants.list'), 'utf8')).trim()).toBe('default');
    const params = (await readFile(join(OS_DIR, 'parameters.list'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[0]);
    expect(params).toEqual([
      'authorized_key',
      'authorized_key_url',
      'suite',
      'mirror',
      'receiver_dir',
      'address',
      'gateway',
    ]);
    for (const s of [
      ...SCRIPTS,
      'common.sh',
      'files/p2v-target-authorized-key',
      'files/p2v-target-console',
      'files/p2v-target-network',
    ]) {
      expect((await execa('dash', ['-n', join(OS_DIR, s)], { reject: false })).exitCode, s).toBe(0);
    }
    for (const s of [
      ...SCRIPTS,
      'files/p2v-target-authorized-key',
      'files/p2v-target-console',
      'files/p2v-target-network',
    ])
      expect((await stat(join(OS_DIR, s))).mode & 0o111, s).toBe(0o111);
  });

  it('verify accepts one key or one URL', async () => {
    expect((await osScript('verify', { OSP_AUTHORIZED_KEY: KEY }, ['parameters'])).exitCode).toBe(0);
    expect(
      (await osScript('verify', { OSP_AUTHORIZED_KEY: 'ecdsa-sha2-nistp256 AAAAE2VjZHNh=' }, ['parameters'])).exitCode,
    ).toBe(0);
    expect(
      (
        await osScript(
          'verify',
          {
            OSP_AUTHORIZED_KEY_URL: 'https://keys.example.org/p2v.pub',
            OSP_SUITE: 'trixie',
            OSP_RECEIVER_DIR: '/usr/lib/ganeti-p2v',
            OSP_ADDRESS: '198.51.100.10/24',
            OSP_GATEWAY: '198.51.100.1',
          },
          ['parameters'],
        )
      ).exitCode,
    ).toBe(0);
  });

  it.each([
    [{}, 'no SSH key for root'],
    [
      { OSP_AUTHORIZED_KEY: KEY, OSP_AUTHORIZED_KEY_URL: 'https://x/k' },
      'both authorized_key and authorized_key_url are set',
    ],
    [
      { OSP_AUTHORIZED_KEY: `command="/bin/sh" ${KEY}` },
      'authorized_key is not one SSH public key line without options',
    ],
    [{ OSP_AUTHORIZED_KEY: `${KEY}\n${KEY}` }, 'authorized_key is not one SSH public key line'],
    [{ OSP_AUTHORIZED_KEY: '-----BEGIN OPENSSH PRIVATE KEY-----' }, 'authorized_key is not one SSH public key line'],
    [
      { OSP_AUTHORIZED_KEY_URL: 'ftp://keys.example.org/k' },
      "authorized_key_url 'ftp://keys.example.org/k' is not an http or https URL",
    ],
    [{ OSP_AUTHORIZED_KEY_URL: "https://x/k'; reboot" }, 'authorized_key_url contains spaces or quotes'],
    [{ OSP_AUTHORIZED_KEY: KEY, OSP_SUITE: 'Bookworm!' }, "suite 'Bookworm!' is not a Debian suite name"],
    [
      { OSP_AUTHORIZED_KEY: KEY, OSP_MIRROR: 'deb.debian.org' },
      "mirror 'deb.debian.org' is not an http(s) or file:/// URL",
    ],
    [{ OSP_AUTHORIZED_KEY: KEY, OSP_RECEIVER_DIR: 'ganeti-p2v' }, "receiver_dir 'ganeti-p2v' is not an absolute path"],
    [
      { OSP_AUTHORIZED_KEY: KEY, OSP_ADDRESS: '198.51.100.10' },
      "address '198.51.100.10' is not an IP address with its prefix",
    ],
    [{ OSP_AUTHORIZED_KEY: KEY, OSP_ADDRESS: 'x/24' }, "address 'x/24' is not an IP address with its prefix"],
    [{ OSP_AUTHORIZED_KEY: KEY, OSP_GATEWAY: '198.51.100.1' }, 'gateway is set without address'],
    [
      { OSP_AUTHORIZED_KEY: KEY, OSP_ADDRESS: '198.51.100.10/24', OSP_GATEWAY: 'router' },
      "gateway 'router' is not an IP address",
    ],
    [{ OSP_AUTHORIZED_KEY: KEY, OS_API_VERSION: '15' }, "OS API version '15' is not supported"],
    [{ OSP_AUTHORIZED_KEY: KEY, OS_VARIANT: 'jessie' }, "unknown variant 'jessie'"],
  ] as [Record<string, string>, string][])('verify refuses %o', async (env, message) => {
    const r = await osScript('verify', env, ['parameters']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`p2v-target verify: error: ${message}`);
    expect(r.stderr).toMatch(/p2v-target verify: hint: /);
  });

  it('verify wants its one argument', async () => {
    const r = await osScript('verify', { OSP_AUTHORIZED_KEY: KEY });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('usage: verify parameters');
  });

  it('import and export are refused with a reason, rename is a no-op', async () => {
    for (const s of ['import', 'export']) {
      const r = await osScript(s, { INSTANCE_NAME: 'target1' });
      expect(r.exitCode, s).toBe(1);
      expect(r.stderr).toContain(`p2v-target ${s}: error: p2v-target instances cannot be ${s}ed`);
    }
    const r = await osScript('rename', { INSTANCE_NAME: 'new', OLD_INSTANCE_NAME: 'old' });
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain('renamed from old to new');
  });

  it('create refuses a missing key, a missing receiver or a small disk before touching the disk', async () => {
    await withTmpDir('p2v-target', async (dir) => {
      // A receiver bundle as `p2v-ramboot receiver` lays it out (create only looks for these two).
      const receiver = join(dir, 'receiver');
      await mkdir(join(receiver, 'bin'), { recursive: true });
      await mkdir(join(receiver, 'dist'));
      await writeFile(join(receiver, 'bin/p2v-import.js'), '');
      const disk = join(dir, 'disk0');
      await writeFile(disk, Buffer.alloc(0));
      await execa('truncate', ['-s', '100M', disk]);
      const nokey = await osScript('create', { INSTANCE_NAME: 't1', DISK_COUNT: '1', DISK_0_PATH: disk });
      expect(nokey.exitCode).toBe(1);
      expect(nokey.stderr).toContain('no SSH key for root');
      const noReceiver = await osScript('create', {
        INSTANCE_NAME: 't1',
        DISK_COUNT: '1',
        DISK_0_PATH: disk,
        OSP_AUTHORIZED_KEY: KEY,
        OSP_RECEIVER_DIR: join(dir, 'none'),
      });
      expect(noReceiver.exitCode).toBe(1);
      expect(noReceiver.stderr).toContain(`error: no receiver bundle in ${join(dir, 'none')}`);
      expect(noReceiver.stderr).toContain(`hint: build it on this node: p2v-ramboot receiver -o ${join(dir, 'none')}`);
      const small = await osScript('create', {
        INSTANCE_NAME: 't1',
        DISK_COUNT: '1',
        DISK_0_PATH: disk,
        OSP_AUTHORIZED_KEY: KEY,
        OSP_RECEIVER_DIR: receiver,
      });
      expect(small.exitCode).toBe(1);
      expect(small.stderr).toContain('disk 0 is 100 MiB; the bootstrap system needs at least 1024 MiB');
      const nodisk = await osScript('create', {
        INSTANCE_NAME: 't1',
        DISK_COUNT: '1',
        DISK_0_PATH: join(dir, 'gone'),
        OSP_AUTHORIZED_KEY: KEY,
        OSP_RECEIVER_DIR: receiver,
      });
      expect(nodisk.exitCode).toBe(1);
      expect(nodisk.stderr).toContain(`disk 0 (${join(dir, 'gone')}) does not exist`);
      // Nothing was written: the file still reads as zeros (sparse, no blocks).
      expect((await stat(disk)).blocks).toBe(0);
    });
  });
});

describe('p2v-target-authorized-key (boot-time key installer)', () => {
  const installer = join(OS_DIR, 'files/p2v-target-authorized-key');
  const runIn = (root: string) =>
    execa('sh', [installer], { reject: false, env: { P2V_TARGET_ROOT: root, P2V_TARGET_FETCH_RETRIES: '0' } });

  it('installs the configured key with safe modes', async () => {
    await withTmpDir('p2v-target', async (root) => {
      await mkdir(join(root, 'etc/p2v-target'), { recursive: true });
      await writeFile(join(root, 'etc/p2v-target/authorized_key'), KEY + '\n');
      const r = await runIn(root);
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toContain('installed 1 SSH key(s) for root');
      expect(await readFile(join(root, 'root/.ssh/authorized_keys'), 'utf8')).toBe(KEY + '\n');
      expect((await stat(join(root, 'root/.ssh'))).mode & 0o777).toBe(0o700);
      expect((await stat(join(root, 'root/.ssh/authorized_keys'))).mode & 0o777).toBe(0o600);
    });
  });

  it('fetches keys from the URL and keeps only plain key lines', async () => {
    await needPrograms('curl');
    await withTmpDir('p2v-target', async (root) => {
      await mkdir(join(root, 'etc/p2v-target'), { recursive: true });
      const served = join(root, 'served.pub');
      const rsa = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 second';
      await writeFile(served, [`# comment`, KEY, `command="rm -rf /" ${KEY}`, '', `${rsa}\r`, 'garbage'].join('\n'));
      await writeFile(join(root, 'etc/p2v-target/authorized_key_url'), `file://${served}\n`);
      const r = await runIn(root);
      expect(r.stderr).toContain('installed 2 SSH key(s) for root');
      expect(r.exitCode).toBe(0);
      expect(await readFile(join(root, 'root/.ssh/authorized_keys'), 'utf8')).toBe(`${KEY}\n${rsa}\n`);
    });
  });

  it('fails loudly when there is no usable key', async () => {
    await withTmpDir('p2v-target', async (root) => {
      const none = await runIn(root);
      expect(none.exitCode).toBe(1);
      expect(none.stderr).toContain('p2v-target: error: no SSH key configured');
      await mkdir(join(root, 'etc/p2v-target'), { recursive: true });
      await writeFile(join(root, 'etc/p2v-target/authorized_key'), `from="10.0.0.1" ${KEY}\n`);
      const opts = await runIn(root);
      expect(opts.exitCode).toBe(1);
      expect(opts.stderr).toContain('no usable SSH public key');
      expect(existsSync(join(root, 'root/.ssh/authorized_keys'))).toBe(false);
    });
  });

  it('reports a URL that does not answer', async () => {
    await withTmpDir('p2v-target', async (root) => {
      await mkdir(join(root, 'etc/p2v-target'), { recursive: true });
      await writeFile(join(root, 'etc/p2v-target/authorized_key_url'), `file://${root}/missing.pub\n`);
      const r = await runIn(root);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`p2v-target: error: cannot fetch root's SSH key from file://${root}/missing.pub`);
    });
  });
});

describe('p2v-target-console (host key, address and login attempts on the console)', () => {
  it('prints the host key fingerprints and address, then each login attempt sshd logs', async () => {
    await needPrograms('ssh-keygen', 'awk');
    await withTmpDir('p2v-target', async (dir) => {
      await mkdir(join(dir, 'etc/ssh'), { recursive: true });
      await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'etc/ssh/ssh_host_ed25519_key')]);
      const fp = (await execa('ssh-keygen', ['-l', '-f', join(dir, 'etc/ssh/ssh_host_ed25519_key.pub')])).stdout.split(
        ' ',
      )[1];
      // journalctl and ip as the bootstrap system answers them.
      const bin = join(dir, 'bin');
      await mkdir(bin);
      const fake = async (name: string, text: string) => {
        await writeFile(join(bin, name), `#!/bin/sh\ncat <<'EOF'\n${text}\nEOF\n`, { mode: 0o755 });
      };
      await fake('ip', '2: ens5    inet 198.51.100.10/24 brd 198.51.100.255 scope global ens5');
      await fake(
        'journalctl',
        [
          'Server listening on 0.0.0.0 port 22.',
          'Failed publickey for root from 198.51.100.1 port 40000 ssh2: ED25519 SHA256:wrongwrongwrong',
          'Connection closed by authenticating user root 198.51.100.1 port 40000 [preauth]',
          'Accepted publickey for root from 198.51.100.1 port 40002 ssh2: ED25519 SHA256:rightright',
        ].join('\n'),
      );
      const r = await execa('sh', [join(OS_DIR, 'files/p2v-target-console')], {
        reject: false,
        env: { P2V_TARGET_ROOT: dir, PATH: `${bin}:${process.env.PATH}` },
      });
      expect(r.exitCode).toBe(0);
      expect(r.stdout.split('\n')).toEqual([
        `p2v-target: SSH host key ${fp} (ED25519)`,
        'p2v-target: address 198.51.100.10 on ens5',
        'p2v-target: waiting for p2v-export --direct root@ADDRESS --host-key SHA256:… (the key above)',
        "p2v-target: REFUSED root login from 198.51.100.1: key SHA256:wrongwrongwrong (ED25519) is not in root's authorized_keys; still waiting",
        'p2v-target: 198.51.100.1 closed the connection: no key it offered for root was accepted; still waiting',
        'p2v-target: accepted root login from 198.51.100.1 (key SHA256:rightright)',
      ]);
    });
  });
});

describe('p2v-target-network (the static address, without networkd)', () => {
  it('puts the address and gateway on the first non-loopback link with ip', async () => {
    await withTmpDir('p2v-target', async (dir) => {
      await mkdir(join(dir, 'etc/p2v-target'), { recursive: true });
      await writeFile(join(dir, 'etc/p2v-target/address'), '198.51.100.10/24\n');
      await writeFile(join(dir, 'etc/p2v-target/gateway'), '198.51.100.1\n');
      const bin = join(dir, 'bin');
      await mkdir(bin);
      // ip as the bootstrap system answers it; every call is logged.
      await writeFile(
        join(bin, 'ip'),
        `#!/bin/sh\necho "$*" >>'${join(dir, 'calls')}'\n[ "$1 $2" = "-o link" ] && printf '1: lo: <LOOPBACK,UP> mtu 65536\\n2: ens13: <BROADCAST,MULTICAST> mtu 1500\\n'\nexit 0\n`,
        { mode: 0o755 },
      );
      const r = await execa('sh', [join(OS_DIR, 'files/p2v-target-network')], {
        reject: false,
        env: { P2V_TARGET_ROOT: dir, PATH: `${bin}:${process.env.PATH}` },
      });
      expect(r.exitCode, r.stdout).toBe(0);
      expect(r.stdout).toBe('p2v-target: configured 198.51.100.10/24 via 198.51.100.1 on ens13');
      expect((await readFile(join(dir, 'calls'), 'utf8')).trim().split('\n')).toEqual([
        '-o link show',
        'link set ens13 up',
        'addr replace 198.51.100.10/24 dev ens13',
        'route replace default via 198.51.100.1 dev ens13',
      ]);
    });
  });
});
