/**
 * LVM roots, end to end: a Debian machine installed on LVM as the Debian
 * installer does it (test/helpers/lvm-guest.ts: /boot on sda1, PV on sda2,
 * VG vgp2v with root and swap LVs, fstab and root= naming /dev/mapper/…),
 * built without device-mapper, is
 *
 *   1. booted in its physical form (IDE disk, qemu -snapshot, TCG): its own
 *      initramfs activates the VG and it reaches "oldhost login:"; at the
 *      same time
 *   2. exported with `p2v-export --hypervisor kvm --hostname lvmnew --ovf |
 *      p2v-import --ganeti-export DIR`: the stream (grains at --compress-level
 *      6, gzip's default) must be ≤ 1.05 × tar | gzip -6 of its live files
 *      (free space, swap and unused extents not sent), the
 *      LVM names kept; then the imported disk boots as Ganeti's kvm
 *      hypervisor starts it (virtio disk, virtio NIC with a new MAC) to
 *      "lvmnew login:";
 *   3. the same export imported with `gnt-backup import` on the sandbox
 *      cluster in kvm mode and started with `gnt-instance start`, to
 *      "lvmnew login:" on its serial console.
 */
import { link, mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliArgv } from '../helpers/cli.js';
import {
  backupImportArgv,
  EXPORT_DIR,
  leaseSandbox,
  SERIAL_WAIT_SCRIPT,
  serialSocket,
  waitSerial,
  type SandboxLease,
} from '../helpers/ganeti.js';
import { GUEST_VG, lvmDebianGuest, type LvmDebianGuest } from '../helpers/lvm-guest.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { expectNoLeftovers, expectPipelineOk, sh, sha256File, shellPipeline, tool, withOffsetLoop } from './support.js';

const NEW = 'lvmnew';
const NEW_MAC = '52:54:00:aa:bb:dd';
const BAD_BOOT =
  /emergency mode|Timed out waiting for device|Dependency failed for|ALERT!|Kernel panic|Gave up waiting/i;

let work = '';
let guest: LvmDebianGuest;
const qemus: ResultPromise[] = [];
let lease: SandboxLease | undefined;
let ganetiExport = '';
/** The export dir p2v-import wrote (DIR/lvmnew), kept for the Ganeti test. */
let exported = '';

function qemu(drive: string[], nic: string[], log: string): ResultPromise {
  const p = execa(
    'qemu-system-x86_64',
    ['-accel', 'tcg', '-m', '1024', ...drive, ...nic, '-serial', `file:${log}`, '-display', 'none', '-no-reboot'],
    { reject: false, stdin: 'ignore', all: true },
  );
  qemus.push(p);
  return p;
}

async function stop(p: ResultPromise): Promise<void> {
  if (p.exitCode === null) p.kill('SIGKILL');
  await p.catch(() => undefined);
}

/** tar | gzip -6 of every live file of the guest (root LV and /boot), read through read-only loops. */
async function liveFilesGzip(): Promise<number> {
  let total = 0;
  const boot = JSON.parse(String((await execa('sfdisk', ['--json', guest.path])).stdout)) as {
    partitiontable: { partitions: { start: number; size: number }[] };
  };
  const p1 = boot.partitiontable.partitions[0]!;
  for (const [name, off, size] of [
    ['root', guest.root.offset, guest.root.size],
    ['boot', p1.start * 512, p1.size * 512],
  ] as const) {
    total += await withOffsetLoop(
      guest.path,
      off,
      size,
      async (dev) => {
        const mnt = join(work, `ref-${name}`);
        await mkdir(mnt, { recursive: true });
        await execa('mount', ['-o', 'ro,noload', dev, mnt]);
        try {
          const r = await execa('bash', [
            '-o',
            'pipefail',
            '-c',
            `tar -C ${sh(mnt)} --one-file-system -cf - . | gzip -6 | wc -c`,
          ]);
          return Number(String(r.stdout).trim());
        } finally {
          await execa('umount', [mnt]);
        }
      },
      { readOnly: true },
    );
  }
  return total;
}

beforeAll(async () => {
  needRoot();
  await needPrograms(
    'qemu-system-x86_64',
    'python3',
    'nbdkit',
    'nbdfuse',
    'losetup',
    'debootstrap',
    'pvcreate',
    'vgcfgrestore',
    'chroot',
    'grub-mkimage',
  );
  work = await mkdtemp('/var/tmp/p2v-e2e-lvm-boot-');
  await mkdir(join(work, 'tmp'));
  guest = await lvmDebianGuest();
}, 1_800_000);

afterAll(async () => {
  for (const p of qemus) await stop(p);
  try {
    if (lease) {
      await lease.exec(['gnt-instance', 'remove', '-f', '--shutdown-timeout=0', NEW]);
      await lease.release();
    }
  } finally {
    if (ganetiExport) await rm(ganetiExport, { recursive: true, force: true });
    if (work && process.env.P2V_KEEP_TMP !== '1') await rm(work, { recursive: true, force: true });
  }
}, 300_000);

describe('a Debian machine on LVM', () => {
  it('boots in its physical form, and exported for kvm boots under qemu (virtio, new MAC) as lvmnew', async () => {
    const before = await sha256File(guest.path);
    // 1. The physical machine, on an IDE disk (sda), never written (-snapshot).
    const physLog = join(work, 'physical.log');
    const physical = qemu(['-snapshot', '-drive', `file=${guest.path},if=ide,format=raw`], ['-nic', 'none'], physLog);
    const physWait = waitSerial(
      physLog,
      join(work, 'physical-wait.log'),
      420,
      String.raw`oldhost login:|emergency mode|Kernel panic`,
    );

    // 2. The export, meanwhile.
    const [reference, r] = await Promise.all([
      liveFilesGzip(),
      shellPipeline(
        `${tool('p2v-export')} ${sh('--disk', guest.path, '--hypervisor', 'kvm', '--hostname', NEW, '--compress-level', '6', '--ovf', '--progress', 'none')}` +
          ` | tee ${sh(join(work, 'stream.ova'))}` +
          ` | ${tool('p2v-import')} ${sh('--staging', join(work, 'staging'), '--ganeti-export', join(work, 'export'), '--progress', 'none')}`,
        { TMPDIR: join(work, 'tmp') },
      ),
    ]);
    expectPipelineOk(r);
    process.stderr.write(`lvm-boot: export took ${r.seconds.toFixed(1)} s\n${r.stderr}`);
    expect(r.stderr).not.toMatch(/copied whole|copied as it is|not supported/);
    expect(r.stderr).toMatch(/unused extents punched/);
    await expectNoLeftovers(work);
    const sent = (await stat(join(work, 'stream.ova'))).size;
    process.stderr.write(
      `lvm-boot: stream ${sent} bytes, tar|gzip -6 of the live files ${reference} bytes (ratio ${(sent / reference).toFixed(3)})\n`,
    );
    exported = join(work, 'export', NEW);
    const raw = join(exported, 'disk0.raw');
    expect((await stat(raw)).size).toBe(guest.size);
    // The guest's LVM names are kept: fstab and root= still say /dev/mapper/vgp2v-….
    await withOffsetLoop(
      raw,
      guest.root.offset,
      guest.root.size,
      async (dev) => {
        const mnt = join(work, 'check-root');
        await mkdir(mnt, { recursive: true });
        await execa('mount', ['-o', 'ro,noload', dev, mnt]);
        try {
          const fstab = await readFile(join(mnt, 'etc/fstab'), 'utf8');
          expect(fstab).toMatch(new RegExp(`^/dev/mapper/${GUEST_VG}-root\\s+/\\s`, 'm'));
          expect(fstab).toMatch(new RegExp(`^/dev/mapper/${GUEST_VG}-swap\\s+none\\s+swap`, 'm'));
          expect(await readFile(join(mnt, 'etc/hostname'), 'utf8')).toBe(`${NEW}\n`);
        } finally {
          await execa('umount', [mnt]);
        }
      },
      { readOnly: true },
    );

    // The converted disk as Ganeti's kvm hypervisor starts it: virtio disk, virtio NIC with a new MAC.
    const convLog = join(work, 'converted.log');
    const t0 = performance.now();
    const converted = qemu(
      ['-drive', `file=${raw},if=virtio,format=raw`],
      ['-nic', `user,model=virtio-net-pci,mac=${NEW_MAC}`],
      convLog,
    );
    const convWait = await waitSerial(
      convLog,
      join(work, 'converted-wait.log'),
      420,
      String.raw`${NEW} login:|emergency mode|Kernel panic`,
    );
    const convText = (await readFile(convLog, 'utf8')).replace(/\r/g, '');
    expect(convWait, `converted console:\n${convText.slice(-4000)}`).toMatch(/^MATCH/);
    expect(convText).toMatch(new RegExp(`^${NEW} login:`, 'm'));
    expect(convText).not.toMatch(BAD_BOOT);
    process.stderr.write(
      `lvm-boot: converted guest at its login prompt ${((performance.now() - t0) / 1000).toFixed(0)} s after qemu start\n`,
    );
    await stop(converted);

    const physVerdict = await physWait;
    const physText = (await readFile(physLog, 'utf8')).replace(/\r/g, '');
    expect(physVerdict, `physical console:\n${physText.slice(-4000)}`).toMatch(/^MATCH/);
    expect(physText).toMatch(/^oldhost login:/m);
    expect(physText).not.toMatch(BAD_BOOT);
    await stop(physical);
    expect(await sha256File(guest.path)).toBe(before);
    // Like with like: the grains compressed at gzip's own default level (-6) against tar | gzip -6 of the live files.
    expect(sent).toBeLessThanOrEqual(1.05 * reference);
  });

  it('imported with gnt-backup import and started on the Ganeti sandbox (kvm), reaches "lvmnew login:"', async () => {
    expect(exported, 'the export of the first test').not.toBe('');
    lease = await leaseSandbox({ hypervisors: 'kvm,fake' });
    await lease.gnt([...cliArgv('p2v-ganeti-os'), 'install']);
    // Dumps must be under Ganeti's export dir itself: hard links, not a copy of 2.6 GB.
    ganetiExport = join(EXPORT_DIR, NEW);
    await rm(ganetiExport, { recursive: true, force: true });
    await mkdir(ganetiExport, { recursive: true });
    for (const f of await readdir(exported)) await link(join(exported, f), join(ganetiExport, f));
    await lease.gnt(backupImportArgv(ganetiExport, NEW, ['-B', 'memory=1024M,vcpus=1']));
    const t0 = performance.now();
    await lease.gnt(['gnt-instance', 'start', NEW]);
    const log = join(work, 'ganeti-console.log');
    const wait = await execa(
      'python3',
      [
        SERIAL_WAIT_SCRIPT,
        serialSocket(NEW),
        log,
        '600',
        String.raw`${NEW} login:|emergency mode|Timed out waiting for device`,
      ],
      { reject: false, all: true },
    );
    const text = (await readFile(log, 'utf8').catch(() => '')).replace(/\r/g, '');
    expect(String(wait.all), `console:\n${text.slice(-4000)}`).toMatch(/^MATCH/);
    expect(text).toMatch(new RegExp(`^${NEW} login:`, 'm'));
    expect(text).not.toMatch(BAD_BOOT);
    process.stderr.write(
      `lvm-boot: Ganeti instance at its login prompt ${((performance.now() - t0) / 1000).toFixed(0)} s after gnt-instance start\n`,
    );
  });
});
