/**
 * The direct path's acceptance, end to end with no staging host:
 *
 *   1. build the ramboot initrd for the host's Debian kernel;
 *   2. boot a bootstrap disk (debootstrap image + the receiver installed in
 *      /opt/ganeti-p2v) with it under qemu TCG, sshd forwarded to a loopback
 *      port, and check over SSH that / is a tmpfs and the disk is free;
 *   3. `p2v-export --direct root@127.0.0.1:PORT` a Debian "physical machine"
 *      (debian-machine.ts: /dev/sda names, tty0 console, old MAC pinned) onto
 *      that disk with the default remote command
 *      (`p2v-import --device /dev/vda --power-off`);
 *   4. the target powers itself off (qemu -no-reboot exits on its own);
 *   5. the same disk image, booted by its own GRUB with a virtio disk, reaches
 *      `directvm login:` on the serial console.
 *
 * The receiver needs Node.js 20 (bookworm ships 18): the host's own node
 * binary (Debian 12, same glibc) goes into the bootstrap image with the
 * receiver bundle (`p2v-ramboot receiver`), on a private copy of the cached
 * image. The cache is never written. The same path under Ganeti itself, with
 * p2v-target installing everything, is ganeti-direct.slow.test.ts.
 */
import { chmod, cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRamInitrd } from '../../ramboot/build.js';
import { bootRamTarget, type RamTarget } from '../helpers/ram-target.js';
import { cliArgv, ROOT } from '../helpers/cli.js';
import { copyImage, debianImage, type DebianImage } from '../helpers/debian-image.js';
import { waitSerial } from '../helpers/ganeti.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { buildDebianMachine, CHECK_LINE, type DebianMachine } from './debian-machine.js';
import { MiB, sha256File, withMount, withOffsetLoop } from './support.js';
import { hostKernel, processesNaming } from '../helpers/host.js';

const HOSTNAME = 'directvm';
const BAD_BOOT = /emergency mode|Timed out waiting for device|Dependency failed for|ALERT!|Kernel panic/i;
/** RAM of the target: the bootstrap root (~290 MiB) plus the receiver (~120 MiB: node alone is 95 MiB). */
const TARGET_MEMORY_MiB = 1280;

let work = '';
let machine: DebianMachine;
let sourceSha = '';
let bootstrap: DebianImage;
let targetDisk = '';
let initrd = '';
let vmlinuz = '';
let target: RamTarget | undefined;
let ownBoot: ResultPromise | undefined;
let receiverMiB = 0;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function duMiB(path: string): Promise<number> {
  return Number((await execa('du', ['-sm', path])).stdout.split('\t')[0]);
}

/**
 * The receiver as p2v-target installs it: the bundle of `p2v-ramboot
 * receiver` (package.json, bin/p2v-import.js, dist/ and only the production
 * dependencies) in /opt/ganeti-p2v, with /usr/local/bin/p2v-import as the
 * entry point. This bookworm image has Node 18, so the host's node (Debian
 * 12, same glibc) comes along; p2v-target itself installs trixie's nodejs.
 */
async function installReceiver(root: string): Promise<void> {
  const opt = join(root, 'opt/ganeti-p2v');
  // global-setup swaps dist/ under this lock: never bundle a half-replaced tree.
  await execa('flock', [join(ROOT, 'dist.lock'), ...cliArgv('p2v-ramboot'), 'receiver', '-q', '-o', opt]);
  await cp(process.execPath, join(opt, 'node'));
  await chmod(join(opt, 'node'), 0o755);
  const wrapper = join(root, 'usr/local/bin/p2v-import');
  await mkdir(join(wrapper, '..'), { recursive: true });
  await writeFile(wrapper, '#!/bin/sh\nexec /opt/ganeti-p2v/node /opt/ganeti-p2v/bin/p2v-import.js "$@"\n');
  await chmod(wrapper, 0o755);
  receiverMiB = await duMiB(opt);
  // The guest's own libraries must run the host's node: try it before booting.
  const help = await execa('chroot', [root, '/usr/local/bin/p2v-import', '--help'], { reject: false });
  expect(help.exitCode, `p2v-import does not run in the bootstrap image:\n${help.stderr}`).toBe(0);
  expect(help.stdout).toContain('--device');
}

beforeAll(async () => {
  needRoot();
  await needPrograms(
    'qemu-system-x86_64',
    'ssh',
    'ssh-keyscan',
    'python3',
    'nbdkit',
    'nbdfuse',
    'qemu-img',
    'losetup',
    'sfdisk',
    'debootstrap',
    'flock',
    'chroot',
  );
  work = await mkdtemp('/var/tmp/p2v-e2e-direct-');
  const k = await hostKernel();
  vmlinuz = k.vmlinuz;
  initrd = join(work, 'ramboot.img');
  await buildRamInitrd({ kernelRelease: k.release, output: initrd });

  machine = await buildDebianMachine(work);
  sourceSha = await sha256File(machine.path);

  // The target instance's disk 0: the bootstrap system, grown so the source fits.
  bootstrap = await debianImage({ hostname: 'p2v-ramboot' });
  targetDisk = await copyImage(bootstrap, join(work, 'target.img'));
  const targetSize = Math.ceil((machine.size + 64 * MiB) / MiB) * MiB;
  await execa('truncate', ['-s', String(targetSize), targetDisk]);
  await withOffsetLoop(targetDisk, bootstrap.partitionOffset, bootstrap.partitionBytes, (dev) =>
    withMount(dev, join(work, 'target-mnt'), installReceiver),
  );
}, 1_800_000);

afterAll(async () => {
  await target?.stop();
  if (ownBoot && ownBoot.exitCode === null) {
    ownBoot.kill('SIGKILL');
    await ownBoot.catch(() => undefined);
  }
  if (work && process.env.P2V_KEEP_TMP !== '1') await rm(work, { recursive: true, force: true });
}, 120_000);

describe('direct path: RAM-booted target, p2v-export --direct, boot the written disk', () => {
  it('runs the bootstrap system from RAM with the receiver and its disk free', async () => {
    const t0 = performance.now();
    target = await bootRamTarget({
      kernel: vmlinuz,
      initrd,
      disk: targetDisk,
      rootUuid: bootstrap.rootUuid,
      sshKey: bootstrap.sshKey,
      workDir: work,
      memoryMiB: TARGET_MEMORY_MiB,
    });
    const console0 = await readFile(target.serialLog, 'utf8');
    const copying = /p2v-ramboot: copying .*/.exec(console0)?.[0] ?? '(no copy line)';
    process.stderr.write(
      `direct-ramboot: receiver ${receiverMiB} MiB; sshd answered ${((performance.now() - t0) / 1000).toFixed(0)} s after qemu start; ${copying.trim()}\n`,
    );
    expect(console0).toContain('p2v-ramboot: /dev/vda1 is free; starting /sbin/init from RAM');
    expect(await target.ssh('findmnt -n -o FSTYPE /')).toBe('tmpfs');
    expect(await target.ssh('findmnt -rn -o SOURCE | grep -c "^/dev/vda" || true')).toBe('0');
    expect(await target.ssh('grep -c "^/dev/vda" /proc/swaps || true')).toBe('0');
    expect(Number(await target.ssh('blockdev --getsize64 /dev/vda'))).toBe((await stat(targetDisk)).size);
    expect(await target.ssh('p2v-import --version || p2v-import --help | head -n 1')).not.toBe('');
  });

  it('p2v-export --direct writes the machine onto the target disk, and the target powers itself off', async () => {
    expect(target, 'the target did not boot').toBeDefined();
    const port = target!.sshPort;
    // The admin's known_hosts entry for the target, as ssh-keyscan gives it ([host]:port key).
    const scan = await execa('ssh-keyscan', ['-p', String(port), '-t', 'ed25519,rsa,ecdsa', '127.0.0.1'], {
      reject: false,
    });
    const keys = String(scan.stdout)
      .split('\n')
      .filter((l) => l.startsWith(`[127.0.0.1]:${port} `));
    expect(keys.length, `ssh-keyscan found no host key:\n${scan.stderr}`).toBeGreaterThan(0);
    const knownHosts = join(work, 'target_known_hosts');
    await writeFile(knownHosts, keys.join('\n') + '\n');

    const [node, exp] = cliArgv('p2v-export');
    // The receiver's own error ends with "p2v-import: hint: …" on our stderr;
    // the sender must then stop too, not wait on a dead channel.
    let receiverFailedAt: number | undefined;
    const watch = function* (line: unknown) {
      if (typeof line === 'string' && line.startsWith('p2v-import: hint:')) receiverFailedAt ??= performance.now();
      yield line;
    };
    const t0 = performance.now();
    const exporter = execa(
      node!,
      [
        exp!,
        '--disk',
        machine.path,
        '--hypervisor',
        'kvm',
        '--hostname',
        HOSTNAME,
        '--cpus',
        '1',
        '--memory',
        '1G',
        '--direct',
        `root@127.0.0.1:${port}`,
        '--key',
        bootstrap.sshKey,
        '--known-hosts',
        knownHosts,
        '--progress',
        'none',
        '--verbose',
      ],
      { reject: false, stdin: 'ignore', stderr: watch, all: true, timeout: 1_200_000, env: { TMPDIR: work } },
    );
    let hung = false;
    while (exporter.exitCode === null && exporter.signalCode === null) {
      if (receiverFailedAt !== undefined && performance.now() - receiverFailedAt > 60_000) {
        hung = true;
        exporter.kill('SIGTERM');
        break;
      }
      await Promise.race([exporter, sleep(1000)]);
    }
    const r = await exporter;
    const exportSeconds = (performance.now() - t0) / 1000;
    const tail = String(r.all).split('\n').slice(-40).join('\n');
    process.stderr.write(`direct-ramboot: p2v-export --direct took ${exportSeconds.toFixed(0)} s\n${tail}\n`);
    const hangNote = hung ? ' (its receiver failed, and it had not exited 60 s later: killed)' : '';
    expect(r.exitCode, `p2v-export failed${hangNote}:\n${tail}`).toBe(0);
    expect(String(r.all)).toContain('p2v-import: disk written and synced; powering off in 3 seconds');

    // Nobody sends poweroff: the receiver does it. qemu runs with -no-reboot, so it exits.
    const t1 = performance.now();
    while ((await processesNaming(targetDisk)).length > 0 && performance.now() - t1 < 120_000) await sleep(500);
    const stillRunning = await processesNaming(targetDisk);
    const consoleText = await readFile(target!.serialLog, 'utf8');
    expect(stillRunning, `the target did not power itself off; console:\n${consoleText.slice(-3000)}`).toEqual([]);
    process.stderr.write(
      `direct-ramboot: target powered off ${((performance.now() - t1) / 1000).toFixed(0)} s after the export ended\n`,
    );
    await target!.stop();
    target = undefined;

    // The source was only read; the target now has the source's partition table.
    expect(await sha256File(machine.path)).toBe(sourceSha);
    const parts = async (img: string) =>
      (
        JSON.parse((await execa('sfdisk', ['--json', img])).stdout) as {
          partitiontable: { partitions: { start: number; size: number; type: string }[] };
        }
      ).partitiontable.partitions.map(({ start, size, type }) => ({ start, size, type }));
    // The target's disk is 64 MiB larger: disk 0 is fitted to it (the root grows; docs/design-fit.md).
    const got = await parts(targetDisk);
    const want = await parts(machine.path);
    expect(got.map((p) => p.type)).toEqual(want.map((p) => p.type));
    expect(got[0]!.start).toBe(want[0]!.start);
    expect(got[0]!.size).toBeGreaterThan(want[0]!.size);
  });

  it('the written disk boots on its own (GRUB, virtio) to the serial login prompt', async () => {
    expect(target, 'the target was not powered off by the direct export (previous test)').toBeUndefined();
    const log = join(work, 'own-boot.log');
    const t0 = performance.now();
    ownBoot = execa(
      'qemu-system-x86_64',
      [
        '-accel',
        'tcg',
        '-m',
        '1024',
        '-smp',
        '1',
        '-drive',
        `file=${targetDisk},if=virtio,format=raw,cache=unsafe`,
        '-nic',
        'user,model=virtio-net-pci',
        '-serial',
        `file:${log}`,
        '-display',
        'none',
        '-monitor',
        'none',
        '-no-reboot',
      ],
      { reject: false, stdin: 'ignore', all: true },
    );
    const login = await waitSerial(log, join(work, 'own-boot-login.log'), 480, `${HOSTNAME} login:`);
    const text1 = (await readFile(log, 'utf8')).replace(/\r/g, '');
    expect(login, `no login prompt; qemu ${ownBoot.exitCode ?? 'running'}; console:\n${text1.slice(-4000)}`).toMatch(
      /^MATCH/,
    );
    process.stderr.write(
      `direct-ramboot: own disk reached "${HOSTNAME} login:" ${((performance.now() - t0) / 1000).toFixed(0)} s after qemu start\n`,
    );
    const check = await waitSerial(log, join(work, 'own-boot-check.log'), 180, CHECK_LINE.source);
    const text = (await readFile(log, 'utf8')).replace(/\r/g, '');
    expect(check, `no check line; console:\n${text.slice(-4000)}`).toMatch(/^MATCH/);
    const [, host, root] = CHECK_LINE.exec(text)!;
    expect({ host, root }).toEqual({ host: HOSTNAME, root: '/dev/vda1' });
    expect(text).not.toMatch(BAD_BOOT);
    ownBoot.kill('SIGKILL');
    await ownBoot;
  });
});
