/**
 * The direct path on the Ganeti sandbox (kvm hypervisor under qemu TCG),
 * exactly as docs/ramboot.md (and the same text in docs/admin-guide.md) tells
 * an admin: the page's `<!-- direct-path: STEP -->` blocks are read and run
 * verbatim, with the test's own values for the settings block's names.
 *
 *   node      p2v-target into /srv/ganeti/os, the ramboot initrd, the receiver bundle
 *   add       gnt-instance add -o p2v-target+default … -O authorized_key_url=…
 *   start     gnt-instance start -H kernel_path=…,initrd_path=…
 *   host-key  the target's host key fingerprint from the OS create log
 *   export    p2v-export --direct (first with a wrong key: refused, disk untouched)
 *   wait-off  until the target has powered itself off
 *   boot      gnt-instance modify -H kernel_path=,initrd_path=; gnt-instance start
 *
 * What the test provides itself, as a site would: the key served over HTTP on
 * the instances' bridge (198.51.100.1 on gntbr0 in the sandbox's network
 * namespace), a Debian mirror reachable from the node (mirror-forward.ts),
 * the source machine (debian-machine.ts) and a console reader
 * (socat on the instance's serial socket, i.e. `gnt-instance console`). The
 * source runs inside the sandbox's network namespace, where the target's
 * address is reachable.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { readDocSteps, settingNames, shellAssignments } from '../helpers/doc-steps.js';
import {
  instanceDiskFiles,
  leaseSandbox,
  NODE,
  serialSocket,
  waitSerial,
  type SandboxLease,
} from '../helpers/ganeti.js';
import { hostKernel } from '../helpers/host.js';
import { forwardMirror, type MirrorForward } from '../helpers/mirror-forward.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { buildDebianMachine, CHECK_LINE, type DebianMachine } from './debian-machine.js';
import { MiB, sha256File } from './support.js';

const INSTANCE = 'p2vdirect';
const NEW_NAME = 'directvm';
const NETNS = 'gnt';
const BRIDGE = 'gntbr0';
const SITE_IP = '198.51.100.1';
const TARGET_IP = '198.51.100.10';
const KEY_PORT = 8765;
const MIRROR_PORT = 8766;
const BAD_BOOT = /emergency mode|Timed out waiting for device|Dependency failed for|ALERT!|Kernel panic/i;
const SYS_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

let work = '';
let binDir = '';
let machine: DebianMachine;
let lease: SandboxLease | undefined;
let steps = new Map<string, string>();
let settings: Record<string, string> = {};
let keyServer: Supervised | undefined;
let mirror: MirrorForward | undefined;
const consoleReaders: ResultPromise[] = [];
let hostKey = '';
let sourceSha = '';
let poweredOff = false;

const seconds = (t0: number) => ((performance.now() - t0) / 1000).toFixed(0);
const note = (s: string) => process.stderr.write(`ganeti-direct: ${s}\n`);

function step(name: string): string {
  const block = steps.get(name);
  if (block === undefined) throw new Error(`docs/ramboot.md has no <!-- direct-path: ${name} --> block`);
  return `${shellAssignments(settings)}\n${block}`;
}

/** A step on the node (master = primary here), inside the sandbox, as root's shell would run it. */
async function nodeStep(name: string, timeoutS = 900) {
  const t0 = performance.now();
  const r = await lease!.exec([
    'timeout',
    String(timeoutS),
    'env',
    `PATH=${binDir}:${SYS_PATH}`,
    'bash',
    '-euo',
    'pipefail',
    '-c',
    step(name),
  ]);
  note(`step ${name}: exit ${r.exitCode} after ${seconds(t0)} s`);
  return r;
}

/** A step on the source machine: the sandbox's network, the test's tools. */
async function sourceStep(name: string, extra: Record<string, string> = {}) {
  const saved = settings;
  settings = { ...settings, ...extra };
  const script = step(name);
  settings = saved;
  const t0 = performance.now();
  const r = await execa('ip', ['netns', 'exec', NETNS, 'bash', '-euo', 'pipefail', '-c', script], {
    reject: false,
    all: true,
    stdin: 'ignore',
    timeout: 1_200_000,
    env: { PATH: `${binDir}:${SYS_PATH}`, TMPDIR: join(work, 'tmp') },
  });
  note(`step ${name}: exit ${r.exitCode} after ${seconds(t0)} s`);
  return { exitCode: r.exitCode ?? -1, all: String(r.all ?? '') };
}

interface Supervised {
  stop(): Promise<void>;
}

/**
 * A site service in the sandbox's namespace, started again if it exits (and
 * said when: something has been seen ending these mid-run on the shared
 * test machine).
 */
function supervise(name: string, start: () => ResultPromise): Supervised {
  let stopped = false;
  let current: ResultPromise;
  const launch = () => {
    const t0 = performance.now();
    current = start();
    void current.then((r) => {
      if (stopped) return;
      note(
        `${name} ended after ${seconds(t0)} s (${r.exitCode ?? r.signal}); restarting: ${String(r.all ?? '').slice(-500)}`,
      );
      setTimeout(launch, 500);
    });
  };
  launch();
  return {
    stop: async () => {
      stopped = true;
      current.kill('SIGTERM');
      await current.catch(() => undefined);
    },
  };
}

/** `gnt-instance console`, kept open into a file for the whole run of the instance. */
function readConsole(log: string): void {
  const sock = serialSocket(INSTANCE);
  consoleReaders.push(
    execa(
      'bash',
      [
        '-c',
        `for i in $(seq 150); do [ -S "$1" ] && exec socat -u UNIX-CONNECT:"$1" OPEN:"$2",creat,append; sleep 0.2; done; echo "no $1" >&2; exit 1`,
        'console',
        sock,
        log,
      ],
      { reject: false, stdin: 'ignore' },
    ),
  );
}

async function consoleText(log: string): Promise<string> {
  return (await readFile(log, 'utf8').catch(() => '')).replace(/\r/g, '');
}

async function instanceStatus(): Promise<string> {
  return (await lease!.gnt(['gnt-instance', 'list', '--no-headers', '-o', 'status', INSTANCE])).trim();
}

beforeAll(async () => {
  needRoot();
  await needPrograms(
    'qemu-system-x86_64',
    'python3',
    'socat',
    'ssh-keygen',
    'nbdkit',
    'nbdfuse',
    'qemu-img',
    'losetup',
    'sfdisk',
    'debootstrap',
    'ip',
    'bash',
  );
  work = await mkdtemp('/var/tmp/p2v-e2e-ganeti-direct-');
  binDir = join(work, 'bin');
  await mkdir(binDir);
  await mkdir(join(work, 'tmp'));
  // The installed commands, as npm's bin links would give them.
  for (const tool of ['p2v-export', 'p2v-import', 'p2v-ramboot']) {
    await writeFile(
      join(binDir, tool),
      `#!/bin/sh\nexec '${process.execPath}' '${join(ROOT, 'bin', `${tool}.js`)}' "$@"\n`,
    );
    await chmod(join(binDir, tool), 0o755);
  }
  for (const k of ['right', 'wrong']) {
    await mkdir(join(work, k));
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `p2v-${k}`, '-f', join(work, k, 'p2v')]);
  }
  await mkdir(join(work, 'www'));
  await writeFile(join(work, 'www/p2v.pub'), await readFile(join(work, 'right/p2v.pub')));

  steps = await readDocSteps(join(ROOT, 'docs/ramboot.md'), 'direct-path');
  machine = await buildDebianMachine(work);
  sourceSha = await sha256File(machine.path);
  const { release } = await hostKernel();
  settings = {
    P2V_SRC: ROOT,
    KERNEL: release,
    P2V_LIB: join(work, 'lib'),
    INSTANCE,
    ADD_OPTS: `-t file -n ${NODE} --no-ip-check --no-name-check`,
    DISK_SIZE: `${Math.ceil(machine.size / MiB) + 64}M`,
    MEMORY: '1536M',
    BRIDGE,
    ADDRESS: `${TARGET_IP}/24`,
    KEY_URL: `http://${SITE_IP}:${KEY_PORT}/p2v.pub`,
    MIRROR: '',
    SOURCE_DISK: machine.path,
    NEW_NAME,
    KEY: join(work, 'right/p2v'),
  };

  lease = await leaseSandbox({ hypervisors: 'kvm,fake' });
  // The site's side of the instances' network: an address on the bridge, the key server, and a
  // Debian mirror the node reaches (the sandbox's namespace has no route out).
  await execa('ip', ['-n', NETNS, 'addr', 'add', `${SITE_IP}/24`, 'dev', BRIDGE]);
  mirror = await forwardMirror({ netns: NETNS, bindIp: SITE_IP, port: MIRROR_PORT, dir: work });
  settings.MIRROR = mirror.url;
  keyServer = supervise('key server', () =>
    execa(
      'ip',
      [
        'netns',
        'exec',
        NETNS,
        'python3',
        '-m',
        'http.server',
        String(KEY_PORT),
        '--bind',
        SITE_IP,
        '--directory',
        join(work, 'www'),
      ],
      { reject: false, stdin: 'ignore', all: true },
    ),
  );
}, 1_800_000);

afterAll(async () => {
  for (const r of consoleReaders) if (r.exitCode === null) r.kill('SIGTERM');
  await Promise.all(consoleReaders.map((p) => p.catch(() => undefined)));
  await keyServer?.stop();
  await mirror?.stop();
  try {
    if (lease) {
      const rm = await lease.exec(['gnt-instance', 'remove', '-f', '--shutdown-timeout=0', INSTANCE]);
      if (rm.exitCode !== 0 && !/not known|does not exist/i.test(rm.all))
        process.stderr.write(`gnt-instance remove ${INSTANCE}: ${rm.all}\n`);
      await lease.release();
    }
  } finally {
    if (work && process.env.P2V_KEEP_TMP !== '1') await rm(work, { recursive: true, force: true });
  }
}, 300_000);

describe('the direct path on Ganeti (kvm, TCG), run from the docs', () => {
  it('the admin guide and ramboot.md give the same steps; the settings are the names the test sets', async () => {
    const guide = await readDocSteps(join(ROOT, 'docs/admin-guide.md'), 'direct-path');
    expect([...steps.keys()]).toEqual(['settings', 'node', 'add', 'start', 'host-key', 'export', 'wait-off', 'boot']);
    expect(Object.fromEntries(guide)).toEqual(Object.fromEntries(steps));
    expect(settingNames(steps.get('settings')!)).toEqual(Object.keys(settings));
  });

  it('node, add, start: the target runs from RAM and shows its host key on the console', async () => {
    const node = await nodeStep('node');
    expect(node.exitCode, node.all).toBe(0);
    let t0 = performance.now();
    const add = await nodeStep('add', 1200);
    expect(add.exitCode, add.all).toBe(0);
    expect(add.all).not.toMatch(/WARNING/);
    note(`gnt-instance add (debootstrap + receiver) took ${seconds(t0)} s`);
    t0 = performance.now();
    const start = await nodeStep('start');
    expect(start.exitCode, start.all).toBe(0);
    const log = join(work, 'console-ram.log');
    readConsole(log);
    const waiting = await waitSerial(
      log,
      join(work, 'console-ram-wait.log'),
      720,
      // Both the console unit's line and the key unit's result, in either order.
      String.raw`(?s)^(?=.*p2v-target: waiting for p2v-export)(?=.*p2v-target: installed \d+ SSH key)|p2v-target: error:`,
    );
    const text = await consoleText(log);
    // The bridge side of the instance's NIC says whether the target sent anything at all.
    const links = await execa('ip', ['-n', NETNS, '-s', 'link', 'show', 'master', BRIDGE], {
      reject: false,
      all: true,
    });
    expect(waiting, `${links.all}\nconsole:\n${text.slice(-4000)}`).toMatch(/^MATCH/);
    note(`target waiting ${seconds(t0)} s after gnt-instance start; ${/p2v-ramboot: copying .*/.exec(text)?.[0]}`);
    expect(text).toContain('p2v-ramboot: /dev/vda1 is free; starting /sbin/init from RAM');
    expect(text).toMatch(/p2v-target: installed 1 SSH key\(s\) for root/);
    expect(text).toContain(`p2v-target: address ${TARGET_IP} on `);

    const hk = await nodeStep('host-key');
    expect(hk.exitCode, hk.all).toBe(0);
    hostKey = hk.all.trim().split('\n').at(-1)!.trim();
    expect(hostKey).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    // What the create log says is what the running target shows.
    expect(text).toContain(`p2v-target: SSH host key ${hostKey} (ED25519)`);
  }, 2_400_000);

  it('a wrong key is refused on both ends; the target keeps waiting, its disk untouched', async () => {
    expect(hostKey, 'the target did not come up (previous test)').not.toBe('');
    const [disk] = await instanceDiskFiles(INSTANCE);
    const before = await sha256File(disk!);
    const r = await sourceStep('export', { KEY: join(work, 'wrong/p2v'), HOST_KEY: hostKey });
    expect(r.exitCode, r.all).not.toBe(0);
    expect(r.all).toContain(`the target root@${TARGET_IP} refused the key ${join(work, 'wrong/p2v')}`);
    expect(r.all).not.toMatch(/overlay…|inspect…/); // refused before any work
    const log = join(work, 'console-ram.log');
    const refused = await waitSerial(log, join(work, 'console-refused.log'), 60, 'p2v-target: REFUSED root login');
    expect(refused, (await consoleText(log)).slice(-3000)).toMatch(/^MATCH/);
    expect(await consoleText(log)).toMatch(
      new RegExp(
        `p2v-target: REFUSED root login from ${SITE_IP.replace(/\./g, '\\.')}: key SHA256:\\S+ \\(ED25519\\) is not in root's authorized_keys; still waiting`,
      ),
    );
    expect(await instanceStatus()).toBe('running');
    expect(await sha256File(disk!)).toBe(before);
  }, 600_000);

  it('the right key: p2v-export --direct writes the machine, the target powers itself off', async () => {
    expect(hostKey, 'the target did not come up').not.toBe('');
    const r = await sourceStep('export', { HOST_KEY: hostKey });
    note(`p2v-export --direct:\n${r.all.split('\n').slice(-25).join('\n')}`);
    expect(r.exitCode, r.all.slice(-5000)).toBe(0);
    expect(r.all).toContain('p2v-import: disk written and synced; powering off');
    const off = await nodeStep('wait-off', 300);
    expect(
      off.exitCode,
      `${off.all}\nconsole:\n${(await consoleText(join(work, 'console-ram.log'))).slice(-3000)}`,
    ).toBe(0);
    expect(await instanceStatus()).not.toBe('running');
    expect(await sha256File(machine.path)).toBe(sourceSha);
    poweredOff = true;
  }, 1_800_000);

  it('boot: the instance starts from its own disk and reaches the login prompt with its new hostname', async () => {
    expect(poweredOff, 'the target did not receive the machine (previous test)').toBe(true);
    const t0 = performance.now();
    const boot = await nodeStep('boot');
    expect(boot.exitCode, boot.all).toBe(0);
    const log = join(work, 'console-own.log');
    readConsole(log);
    const login = await waitSerial(
      log,
      join(work, 'console-own-wait.log'),
      600,
      String.raw`(?s)^(?=.*P2V-CHECK[^\n]*END)(?=.*${NEW_NAME} login:)|emergency mode|Timed out waiting for device`,
    );
    const text = await consoleText(log);
    expect(login, `console:\n${text.slice(-4000)}`).toMatch(/^MATCH/);
    note(`"${NEW_NAME} login:" ${seconds(t0)} s after the boot step`);
    expect(text).toMatch(new RegExp(`^${NEW_NAME} login:`, 'm'));
    expect(text).not.toMatch(BAD_BOOT);
    const [, host, root] = CHECK_LINE.exec(text) ?? [];
    expect({ host, root }).toEqual({ host: NEW_NAME, root: '/dev/vda1' });
    expect(await instanceStatus()).toBe('running');
  }, 1_200_000);
});
