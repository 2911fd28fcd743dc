/**
 * The whole way into a running Ganeti instance: the Debian machine of
 * debian-machine.ts exported with `--hypervisor kvm`, received by p2v-import
 * as a Ganeti export, `gnt-backup import`ed with our p2v-image OS on the
 * sandbox cluster in kvm mode (qemu TCG, paravirtual disk and NIC, serial
 * console on a unix socket), `gnt-instance start`ed, and watched on its
 * serial console until the login prompt shows the new hostname.
 */
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliArgv } from '../helpers/cli.js';
import {
  backupImportArgv,
  EXPORT_DIR,
  instanceDiskFiles,
  leaseSandbox,
  NODE,
  SERIAL_WAIT_SCRIPT,
  serialSocket,
  type SandboxLease,
} from '../helpers/ganeti.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { buildDebianMachine, CHECK_LINE, type DebianMachine } from './debian-machine.js';
import { expectNoLeftovers, expectPipelineOk, sh, sha256File, shellPipeline, tool } from './support.js';

const INSTANCE = 'gntboot';
const BAD_BOOT = /emergency mode|Timed out waiting for device|Dependency failed for|ALERT!|Kernel panic/i;

let work = '';
let machine: DebianMachine;
let lease: SandboxLease | undefined;
let exportDir = '';

beforeAll(async () => {
  needRoot();
  await needPrograms('qemu-system-x86_64', 'python3', 'nbdkit', 'nbdfuse', 'qemu-img', 'losetup', 'debootstrap');
  work = await mkdtemp('/var/tmp/p2v-e2e-ganeti-boot-');
  await mkdir(join(work, 'tmp'));
  machine = await buildDebianMachine(work);
  lease = await leaseSandbox({ hypervisors: 'kvm,fake' });
  await lease.gnt([...cliArgv('p2v-ganeti-os'), 'install']);
  expect(await lease.gnt(['gnt-os', 'list', '--no-headers'])).toMatch(/^p2v-image\+default$/m);
}, 1_800_000);

afterAll(async () => {
  try {
    if (lease) {
      const rm = await lease.exec(['gnt-instance', 'remove', '-f', '--shutdown-timeout=0', INSTANCE]);
      if (rm.exitCode !== 0 && !/not known|does not exist/i.test(rm.all))
        process.stderr.write(`gnt-instance remove ${INSTANCE}: ${rm.all}\n`);
      await lease.release();
    }
  } finally {
    if (exportDir) await rm(exportDir, { recursive: true, force: true });
    if (work && process.env.P2V_KEEP_TMP !== '1') await rm(work, { recursive: true, force: true });
  }
}, 300_000);

describe('p2v-export | p2v-import | gnt-backup import | gnt-instance start (kvm, TCG)', () => {
  it('boots the imported instance to a login prompt with its new hostname', async () => {
    const before = await sha256File(machine.path);
    const r = await shellPipeline(
      `${tool('p2v-export')} ${sh('--disk', machine.path, '--hypervisor', 'kvm', '--hostname', INSTANCE, '--ovf', '--progress', 'none')}` +
        ` | ${tool('p2v-import')} ${sh('--staging', join(work, 'staging'), '--ganeti-export', EXPORT_DIR, '--progress', 'none')}`,
      { TMPDIR: join(work, 'tmp') },
    );
    expectPipelineOk(r);
    process.stderr.write(`ganeti-boot: p2v-export | p2v-import took ${r.seconds.toFixed(1)} s\n`);
    await expectNoLeftovers(work);
    expect(await sha256File(machine.path)).toBe(before);
    exportDir = join(EXPORT_DIR, INSTANCE);
    const ini = await readFile(join(exportDir, 'config.ini'), 'utf8');
    expect(ini).toMatch(/^nic0_mode = bridged$/m);
    expect(ini).toMatch(/^nic0_link = gntbr0$/m);

    let t0 = performance.now();
    const out = await lease!.gnt(backupImportArgv(exportDir, INSTANCE, ['-B', 'memory=1024M,vcpus=1']));
    expect(out).not.toMatch(/WARNING/); // a failed OS import script is only a warning to Ganeti
    process.stderr.write(`ganeti-boot: gnt-backup import took ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    const [disk] = await instanceDiskFiles(INSTANCE);
    expect((await stat(disk!)).size).toBe(machine.size);
    const cmp = await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', join(exportDir, 'disk0.raw'), disk!], {
      reject: false,
      all: true,
    });
    expect(cmp.exitCode, String(cmp.all)).toBe(0);

    t0 = performance.now();
    await lease!.gnt(['gnt-instance', 'start', INSTANCE]);
    const log = join(work, 'console.log');
    const wait = await execa(
      'python3',
      // Both the login prompt and the check line, in either order; a failed boot ends the wait early.
      [
        SERIAL_WAIT_SCRIPT,
        serialSocket(INSTANCE),
        log,
        '600',
        String.raw`(?s)^(?=.*P2V-CHECK[^\n]*END)(?=.*${INSTANCE} login:)|emergency mode|Timed out waiting for device`,
      ],
      { reject: false, all: true },
    );
    const text = (await readFile(log, 'utf8').catch(() => '')).replace(/\r/g, '');
    expect(String(wait.all), `console:\n${text.slice(-4000)}`).toMatch(/^MATCH/);
    process.stderr.write(
      `ganeti-boot: "${INSTANCE} login:" ${((performance.now() - t0) / 1000).toFixed(0)} s after gnt-instance start\n`,
    );
    expect(text).toMatch(new RegExp(`^${INSTANCE} login:`, 'm'));
    expect(text).not.toMatch(BAD_BOOT);
    const [line, host, root, swap, ip] = CHECK_LINE.exec(text) ?? [];
    expect({ host, root }).toEqual({ host: INSTANCE, root: '/dev/vda1' });
    expect(swap?.split(',')).toContain('/dev/vda2');
    // No --ip: the old static address stays, now on the NIC with Ganeti's MAC.
    expect(ip, `${line}\nconsole:\n${text.slice(-3000)}`).toMatch(/(^|,)[^=,]+=192\.0\.2\.10\/24(,|$)/);
    const list = await lease!.gnt(['gnt-instance', 'list', '--no-headers', '-o', 'name,status', INSTANCE]);
    expect(list.trim().split(/\s+/)).toEqual([INSTANCE, 'running']);
  });
});
