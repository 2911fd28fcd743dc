/**
 * The p2v-target OS definition for real: run its `create` as Ganeti does (OS
 * API 20 environment, disk 0 a file) with our test key as authorized_key and
 * the receiver bundle of `p2v-ramboot receiver`, then start the disk the way
 * the direct path does (node's kernel + the ramboot initrd, root=UUID from
 * create), log in with the key and run the receiver on Debian's node.
 */
import { execa } from 'execa';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildRamInitrd } from '../../ramboot/build.js';
import { bundleReceiver } from '../../ramboot/receiver.js';
import { ROOT } from '../helpers/cli.js';
import { bootRamTarget, type RamTarget } from '../helpers/ram-target.js';
import { needPrograms, needRoot } from '../helpers/programs.js';

const CREATE = fileURLToPath(new URL('../../ganeti-os/p2v-target/create', import.meta.url));

describe('p2v-target create + ramboot', () => {
  let dir: string | undefined;
  let target: RamTarget | undefined;

  afterAll(async () => {
    await target?.stop();
    if (dir && process.env.P2V_KEEP_TMP !== '1') await rm(dir, { recursive: true, force: true });
  });

  it('installs a bootstrap system that runs from RAM and lets the key in', async () => {
    needRoot();
    await needPrograms('debootstrap', 'sfdisk', 'losetup', 'qemu-system-x86_64', 'ssh', 'ssh-keygen');
    dir = await mkdtemp(join(process.env.P2V_TEST_TMP ?? tmpdir(), 'p2v-target-'));
    const release = (await readdir('/lib/modules').catch(() => [] as string[]))
      .filter((r) => r.endsWith('-amd64'))
      .sort()
      .at(-1);
    if (!release)
      throw new Error('no Debian kernel installed: apt-get install linux-image-amd64 (or run scripts/setup.sh --slow)');
    const key = join(dir, 'id_ed25519');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'p2v-direct', '-f', key]);
    const pub = (await readFile(key + '.pub', 'utf8')).trim();
    const disk = join(dir, 'disk0');
    await execa('truncate', ['-s', '2G', disk]);
    const receiver = join(dir, 'receiver');
    // From the checkout itself: run from the TS sources, the module's own place is not the installation's root.
    await bundleReceiver({ output: receiver, source: ROOT });

    const t0 = Date.now();
    const create = await execa(CREATE, [], {
      reject: false,
      extendEnv: false,
      env: {
        PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
        OS_API_VERSION: '20',
        OS_NAME: 'p2v-target',
        OS_VARIANT: 'default',
        INSTANCE_NAME: 'target1.example.org',
        DISK_COUNT: '1',
        DISK_0_PATH: disk,
        DISK_0_SIZE: '2048',
        OSP_AUTHORIZED_KEY: pub,
        OSP_RECEIVER_DIR: receiver,
        ...(process.env.P2V_DEBIAN_MIRROR ? { OSP_MIRROR: process.env.P2V_DEBIAN_MIRROR } : {}),
      },
    });
    console.log(`p2v-target create: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    expect(create.stderr.split('\n').slice(-3).join('\n')).toContain('p2v-target create: done');
    expect(create.exitCode).toBe(0);
    expect(create.stderr).toMatch(/p2v-target create: receiver: p2v-import \S+ on Node\.js v(2\d|[3-9]\d)\./);
    const hostKey = /p2v-target create: SSH host key (SHA256:\S+) \(ED25519\)/.exec(create.stderr)?.[1];
    expect(hostKey).toBeTruthy();
    const uuid = /root filesystem UUID ([0-9a-f-]{36})/.exec(create.stderr)?.[1];
    expect(uuid).toBeTruthy();
    // create leaves no loop device or mount behind.
    expect((await execa('losetup', ['-j', disk])).stdout).toBe('');

    const initrd = join(dir, 'initrd.img');
    await buildRamInitrd({ kernelRelease: release, output: initrd });
    target = await bootRamTarget({
      kernel: `/boot/vmlinuz-${release}`,
      initrd,
      disk,
      rootUuid: uuid!,
      sshKey: key,
      workDir: dir,
      memoryMiB: 1536,
    });
    const consoleText = await readFile(target.serialLog, 'utf8');
    console.log(consoleText.match(/p2v-ramboot: copying .*/)?.[0]);
    expect(await target.ssh('findmnt -n -o FSTYPE /')).toBe('tmpfs');
    expect(await target.ssh('hostname')).toBe('target1');
    expect(await target.ssh('systemctl is-active p2v-target-authorized-key.service')).toBe('active');
    expect(await target.ssh('cat /root/.ssh/authorized_keys')).toBe(pub);
    expect(await target.ssh('passwd -S root | cut -d" " -f2')).toBe('L');
    expect(await target.ssh('sshd -T | grep -i "^passwordauthentication"')).toBe('passwordauthentication no');
    expect(await target.ssh('findmnt -rn -o SOURCE | grep -c "^/dev/vda" || true')).toBe('0');
    expect(await target.ssh('p2v-import --version')).toMatch(/^p2v-import /);
    expect(await target.ssh('systemctl is-active p2v-target-console.service')).toBe('active');
    expect(await target.ssh('journalctl -b -o cat -u p2v-target-console.service')).toContain(
      `p2v-target: SSH host key ${hostKey} (ED25519)`,
    );
    await target.poweroff();
    target = undefined;
  });
});
