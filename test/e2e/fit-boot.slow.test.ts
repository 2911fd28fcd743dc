/**
 * Fit-to-size, booted (issue 16's slow acceptance): the Debian machine of
 * debian-machine.ts grown to a 4 GiB disk (root ext4 filling it, swap at the
 * end: a large, mostly empty physical disk) is exported with
 *
 *   p2v-export --disk IMG --hypervisor kvm --hostname fitted --target-size 2G --ovf | p2v-import --ganeti-export …
 *
 * and must come out as a 2 GiB disk that boots: once under plain qemu TCG
 * (virtio, new MAC) and once as a Ganeti instance of the sandbox's kvm
 * hypervisor with a 2 GiB instance disk, both to `fitted login:`. The two
 * boots run side by side to spend the TCG minutes once.
 */
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliArgv } from '../helpers/cli.js';
import {
  backupImportArgv,
  EXPORT_DIR,
  instanceDiskFiles,
  leaseSandbox,
  SERIAL_WAIT_SCRIPT,
  serialSocket,
  waitSerial,
  type SandboxLease,
} from '../helpers/ganeti.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { buildDebianMachine, CHECK_LINE, type DebianMachine } from './debian-machine.js';
import {
  expectNoLeftovers,
  expectPipelineOk,
  MiB,
  sh,
  sha256File,
  probe,
  shellPipeline,
  tool,
  withOffsetLoop,
} from './support.js';

const INSTANCE = 'fitted';
const SOURCE_MiB = 4096;
const TARGET_MiB = 2048;
const BAD_BOOT = /emergency mode|Timed out waiting for device|Dependency failed for|ALERT!|Kernel panic/i;

let work = '';
let machine: DebianMachine;
let lease: SandboxLease | undefined;
let exportDir = '';
let qemu: ResultPromise | undefined;

/** Grow the machine's disk to SOURCE_MiB: root ext4 up to the swap, swap moved to the end (same UUID and label). */
async function growTo4G(m: DebianMachine): Promise<DebianMachine> {
  const size = SOURCE_MiB * MiB;
  const swapOffset = size - m.swapSize;
  const rootSize = swapOffset - m.rootOffset;
  await execa('truncate', ['-s', String(size), m.path]);
  // Edit the existing table (the MBR boot code stays): drop the swap, stretch the root, append the swap.
  await execa('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', '--delete', m.path, '2']);
  await execa('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', '-N', '1', m.path], {
    input: `${m.rootOffset / 512},${rootSize / 512}\n`,
  });
  await execa('sfdisk', ['--quiet', '--append', '--no-reread', '--no-tell-kernel', m.path], {
    input: `start=${swapOffset / 512}, size=${m.swapSize / 512}, type=82\n`,
  });
  await withOffsetLoop(m.path, m.rootOffset, rootSize, async (dev) => {
    await execa('e2fsck', ['-fy', dev], { reject: false });
    await execa('resize2fs', [dev]);
  });
  await withOffsetLoop(m.path, swapOffset, m.swapSize, (dev) =>
    execa('mkswap', ['-U', m.swapUuid, '-L', 'swap', dev]).then(() => undefined),
  );
  return { ...m, size, rootSize, swapOffset };
}

beforeAll(async () => {
  needRoot();
  await needPrograms(
    'qemu-system-x86_64',
    'python3',
    'nbdkit',
    'nbdfuse',
    'qemu-img',
    'losetup',
    'debootstrap',
    'resize2fs',
    'e2fsck',
    'sfdisk',
  );
  work = await mkdtemp('/var/tmp/p2v-e2e-fit-boot-');
  await mkdir(join(work, 'tmp'));
  machine = await growTo4G(await buildDebianMachine(work));
  lease = await leaseSandbox({ hypervisors: 'kvm,fake' });
  await lease.gnt([...cliArgv('p2v-ganeti-os'), 'install']);
}, 1_800_000);

afterAll(async () => {
  try {
    if (qemu && qemu.exitCode === null) {
      qemu.kill('SIGKILL');
      await qemu.catch(() => undefined);
    }
    if (lease) {
      const r = await lease.exec(['gnt-instance', 'remove', '-f', '--shutdown-timeout=0', INSTANCE]);
      if (r.exitCode !== 0 && !/not known|does not exist/i.test(r.all))
        process.stderr.write(`gnt-instance remove ${INSTANCE}: ${r.all}\n`);
      await lease.release();
    }
  } finally {
    if (exportDir) await rm(exportDir, { recursive: true, force: true });
    if (work && process.env.P2V_KEEP_TMP !== '1') await rm(work, { recursive: true, force: true });
  }
}, 300_000);

describe('a 4 GiB machine fitted onto a 2 GiB disk boots', () => {
  it('under qemu TCG and as a Ganeti kvm instance with a 2 GiB disk, to its login prompt', async () => {
    const before = await sha256File(machine.path);
    const r = await shellPipeline(
      `${tool('p2v-export')} ${sh('--disk', machine.path, '--hypervisor', 'kvm', '--hostname', INSTANCE, '--target-size', `${TARGET_MiB}M`, '--ovf', '--progress', 'none')}` +
        ` | ${tool('p2v-import')} ${sh('--staging', join(work, 'staging'), '--ganeti-export', EXPORT_DIR, '--progress', 'none')}`,
      { TMPDIR: join(work, 'tmp') },
    );
    expectPipelineOk(r);
    process.stderr.write(`fit-boot: export with --target-size took ${r.seconds.toFixed(1)} s\n${r.stderr}`);
    expect(r.stderr).toMatch(/fitted: +disk 0: 4\.0 GiB .*→ 2\.0 GiB/);
    await expectNoLeftovers(work);
    expect(await sha256File(machine.path)).toBe(before);
    exportDir = join(EXPORT_DIR, INSTANCE);
    const ini = await readFile(join(exportDir, 'config.ini'), 'utf8');
    expect(ini).toMatch(new RegExp(`^disk0_size = ${TARGET_MiB}$`, 'm'));
    const dump = join(exportDir, 'disk0.raw');
    expect((await stat(dump)).size).toBe(TARGET_MiB * MiB);

    // The table: root then swap, inside 2 GiB, root ext4 clean with its UUID.
    const table = JSON.parse((await execa('sfdisk', ['--json', dump])).stdout).partitiontable;
    expect(table.partitions).toHaveLength(2);
    const [p1, p2] = table.partitions;
    expect(p1.start * 512).toBe(machine.rootOffset);
    expect(p2.type).toBe('82');
    expect((p2.start + p2.size) * 512).toBeLessThanOrEqual(TARGET_MiB * MiB);
    await withOffsetLoop(
      dump,
      p1.start * 512,
      p1.size * 512,
      async (dev) => {
        const fsck = await execa('e2fsck', ['-fn', dev], { reject: false, all: true });
        expect(fsck.exitCode, String(fsck.all)).toBe(0);
        expect((await probe(dev)).UUID).toBe(machine.rootUuid);
      },
      { readOnly: true },
    );
    await withOffsetLoop(
      dump,
      p2.start * 512,
      p2.size * 512,
      async (dev) => {
        expect((await probe(dev)).UUID).toBe(machine.swapUuid);
      },
      { readOnly: true },
    );

    // Plain qemu on the dump (snapshot: the dump stays as Ganeti will read it), side by side with Ganeti.
    const log = join(work, 'qemu-serial.log');
    const t0 = performance.now();
    qemu = execa(
      'qemu-system-x86_64',
      [
        '-accel',
        'tcg',
        '-m',
        '768',
        '-drive',
        `file=${dump},if=virtio,format=raw,snapshot=on`,
        '-nic',
        'user,model=virtio-net-pci,mac=52:54:00:aa:bb:01',
        '-serial',
        `file:${log}`,
        '-display',
        'none',
        '-no-reboot',
      ],
      { reject: false, stdin: 'ignore', all: true },
    );
    const plain = waitSerial(log, join(work, 'qemu-login.log'), 600, `${INSTANCE} login:`);

    const out = await lease!.gnt(backupImportArgv(exportDir, INSTANCE, ['-B', 'memory=768M,vcpus=1']));
    expect(out).not.toMatch(/WARNING/);
    const [disk] = await instanceDiskFiles(INSTANCE);
    expect((await stat(disk!)).size).toBe(TARGET_MiB * MiB);
    await lease!.gnt(['gnt-instance', 'start', INSTANCE]);
    const glog = join(work, 'ganeti-console.log');
    const ganeti = execa(
      'python3',
      [
        SERIAL_WAIT_SCRIPT,
        serialSocket(INSTANCE),
        glog,
        '600',
        String.raw`(?s)^(?=.*P2V-CHECK[^\n]*END)(?=.*${INSTANCE} login:)|emergency mode|Timed out waiting for device`,
      ],
      { reject: false, all: true },
    );

    const plainResult = await plain;
    const qtext = (await readFile(log, 'utf8').catch(() => '')).replace(/\r/g, '');
    expect(plainResult, `qemu: no login prompt; console:\n${qtext.slice(-4000)}`).toMatch(/^MATCH/);
    process.stderr.write(`fit-boot: qemu login prompt ${((performance.now() - t0) / 1000).toFixed(0)} s after start\n`);
    expect(qtext).not.toMatch(BAD_BOOT);
    qemu.kill('SIGKILL');
    await qemu;

    const g = await ganeti;
    const gtext = (await readFile(glog, 'utf8').catch(() => '')).replace(/\r/g, '');
    expect(String(g.all), `ganeti: console:\n${gtext.slice(-4000)}`).toMatch(/^MATCH/);
    expect(gtext).toMatch(new RegExp(`^${INSTANCE} login:`, 'm'));
    expect(gtext).not.toMatch(BAD_BOOT);
    const [line, host, root, swap] = CHECK_LINE.exec(gtext) ?? [];
    expect({ host, root }, line).toEqual({ host: INSTANCE, root: '/dev/vda1' });
    expect(swap?.split(',')).toContain('/dev/vda2');
  });
});
