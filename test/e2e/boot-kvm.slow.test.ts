/**
 * The fixups acceptance: a real Debian bookworm machine (debian-machine.ts:
 * /dev/sda names, eth0 pinned to the old MAC, static address, tty0 console)
 * attached to a read-only loop device, as a live image sees a disk under a
 * name that is not the guest's (loopN, not sda), and exported with
 *
 *   p2v-export --disk /dev/loopN --hypervisor kvm --hostname newname --ip 10.0.0.5/24 --ovf | p2v-import --raw R
 *
 * boots under qemu the way Ganeti's kvm hypervisor runs it: virtio disk,
 * virtio NIC with a NEW MAC, serial console (TCG: no nested KVM here). Its
 * own p2v-check.service then reports hostname, root device, swap and
 * addresses on the console: root must be on the virtio disk, mapped from
 * the guest's own sda by its device map. The same machine exported from the
 * image file for xen-pvm must get its console moved to hvc0. (The image-file
 * path of the kvm export is covered by test/guest/export-device-names.test.ts.)
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitSerial } from '../helpers/ganeti.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { buildDebianMachine, CHECK_LINE, inspectRoot, type DebianMachine } from './debian-machine.js';
import { expectNoLeftovers, expectPipelineOk, leftovers, sh, sha256File, shellPipeline, tool } from './support.js';

const NEW_MAC = '52:54:00:aa:bb:cc';
const BAD_BOOT = /emergency mode|Timed out waiting for device|Dependency failed for|ALERT!|Kernel panic/i;

let work = '';
let machine: DebianMachine;
let sourceSha = '';
let qemu: ResultPromise | undefined;

/** Export `disk` (the machine's image or a device over it) for `hypervisor` and decode it to a raw disk; returns its path. */
async function exportToRaw(disk: string, hypervisor: string, extra: string[], name: string): Promise<string> {
  const rawDir = join(work, `raw-${name}`);
  const r = await shellPipeline(
    `${tool('p2v-export')} ${sh('--disk', disk, '--hypervisor', hypervisor, ...extra, '--ovf', '--progress', 'none')}` +
      ` | ${tool('p2v-import')} ${sh('--staging', join(work, 'staging'), '--name', name, '--raw', rawDir, '--progress', 'none')}`,
    { TMPDIR: join(work, 'tmp') },
  );
  expectPipelineOk(r);
  process.stderr.write(`boot-kvm: export for ${hypervisor} took ${r.seconds.toFixed(1)} s\n${r.stderr}`);
  // The source's own loop device (when exporting from one) is the test's, not a leftover of the export.
  expect((await leftovers(work)).filter((l) => !l.startsWith(`loop: ${disk}: `))).toEqual([]);
  expect(await sha256File(machine.path)).toBe(sourceSha);
  const raws = await readdir(rawDir);
  expect(raws).toEqual([`${name}-disk0.raw`]);
  return join(rawDir, raws[0]!);
}

beforeAll(async () => {
  needRoot();
  await needPrograms('qemu-system-x86_64', 'python3', 'nbdkit', 'nbdfuse', 'qemu-img', 'losetup', 'debootstrap');
  work = await mkdtemp('/var/tmp/p2v-e2e-boot-kvm-');
  await mkdir(join(work, 'tmp'));
  machine = await buildDebianMachine(work);
  sourceSha = await sha256File(machine.path);
}, 1_800_000);

afterAll(async () => {
  if (qemu && qemu.exitCode === null) {
    qemu.kill('SIGKILL');
    await qemu.catch(() => undefined);
  }
  if (work && process.env.P2V_KEEP_TMP !== '1') await rm(work, { recursive: true, force: true });
}, 120_000);

describe('a Debian machine moved to kvm boots with its new identity', () => {
  it('exported from a loop device (live name loopN, guest name sda), boots under qemu (virtio disk, new MAC) to login, with hostname, root, swap and address fixed', async () => {
    const loop = (await execa('losetup', ['--find', '--show', '--read-only', machine.path])).stdout.trim();
    let raw: string;
    try {
      expect(loop).toMatch(/^\/dev\/loop\d+$/);
      raw = await exportToRaw(loop, 'kvm', ['--hostname', 'newname', '--ip', '10.0.0.5/24'], 'newname');
    } finally {
      await execa('losetup', ['-d', loop], { reject: false });
    }
    await expectNoLeftovers(work);
    expect((await stat(raw)).size).toBe(machine.size);
    await inspectRoot(raw, machine, join(work, 'kvm-mnt'), async (root) => {
      const fstab = await readFile(join(root, 'etc/fstab'), 'utf8');
      expect(fstab).toMatch(new RegExp(`^UUID=${machine.rootUuid}\\s+/\\s`, 'm'));
      expect(fstab).toMatch(new RegExp(`^UUID=${machine.swapUuid}\\s+none\\s+swap`, 'm'));
      const grub = await readFile(join(root, 'boot/grub/grub.cfg'), 'utf8');
      expect(grub).toContain(`root=UUID=${machine.rootUuid} `);
      expect(await readFile(join(root, 'etc/hosts'), 'utf8')).toMatch(/^10\.0\.0\.5\tnewname\.example\.org\tnewname$/m);
    });

    const log = join(work, 'serial.log');
    const t0 = performance.now();
    qemu = execa(
      'qemu-system-x86_64',
      [
        '-accel',
        'tcg',
        '-m',
        '1024',
        '-drive',
        `file=${raw},if=virtio,format=raw`,
        '-nic',
        `user,model=virtio-net-pci,mac=${NEW_MAC}`,
        '-serial',
        `file:${log}`,
        '-display',
        'none',
        '-no-reboot',
      ],
      { reject: false, stdin: 'ignore', all: true },
    );
    const login = await waitSerial(log, join(work, 'serial-login.log'), 420, String.raw`login:`);
    const console1 = await readFile(log, 'utf8');
    expect(login, `no login prompt; qemu ${qemu.exitCode ?? 'running'}; console:\n${console1.slice(-4000)}`).toMatch(
      /^MATCH/,
    );
    process.stderr.write(`boot-kvm: login prompt ${((performance.now() - t0) / 1000).toFixed(0)} s after qemu start\n`);
    const check = await waitSerial(log, join(work, 'serial-check.log'), 240, CHECK_LINE.source);
    const text = (await readFile(log, 'utf8')).replace(/\r/g, '');
    expect(check, `no check line; console:\n${text.slice(-4000)}`).toMatch(/^MATCH/);
    const m = CHECK_LINE.exec(text)!;
    const [, host, root, swap, ip] = m;
    expect({ host, root }).toEqual({ host: 'newname', root: '/dev/vda1' });
    expect(swap!.split(',')).toContain('/dev/vda2');
    expect(ip, `${m[0]}\nconsole:\n${text.slice(-3000)}`).toMatch(/(^|,)[^=,]+=10\.0\.0\.5\/24(,|$)/);
    expect(text).toMatch(/^newname login:/m);
    expect(text).not.toMatch(BAD_BOOT);
    qemu.kill('SIGKILL');
    await qemu;
  });

  it('exported for xen-pvm, the console moves to hvc0 (getty and kernel command line)', async () => {
    const raw = await exportToRaw(machine.path, 'xen-pvm', [], 'xenpvm');
    await inspectRoot(raw, machine, join(work, 'xen-mnt'), async (root) => {
      const wants = await readdir(join(root, 'etc/systemd/system/getty.target.wants'));
      expect(wants).toContain('serial-getty@hvc0.service');
      const grub = await readFile(join(root, 'boot/grub/grub.cfg'), 'utf8');
      const linuxLines = grub.split('\n').filter((l) => /^\s*linux\s/.test(l));
      expect(linuxLines.length).toBeGreaterThan(0);
      for (const l of linuxLines) {
        expect(l).toMatch(/\sconsole=hvc0(\s|$)/);
        expect(l).not.toMatch(/root=\/dev\/sda/);
      }
      expect(await readFile(join(root, 'etc/default/grub'), 'utf8')).toMatch(
        /^GRUB_CMDLINE_LINUX="[^"]*console=hvc0[^"]*"/m,
      );
      const fstab = await readFile(join(root, 'etc/fstab'), 'utf8');
      expect(fstab).not.toMatch(/^\/dev\/sda/m);
    });
  });
});
