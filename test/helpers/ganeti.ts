/**
 * The real Ganeti 3.0 cluster of ../shared/tools/ganeti-sandbox.sh, for tests.
 *
 * There is one sandbox per machine (one netns, one /var/lib/ganeti), so a
 * test file takes it with `leaseSandbox()`, which holds an exclusive flock
 * for as long as the file runs: two test files (or two vitest workers) that
 * need Ganeti wait for each other instead of tearing each other's cluster
 * down. `release()` runs `down` (wiping every instance and export) and drops
 * the lock; call it from afterAll so it also runs when a test fails.
 *
 * Remember (shared/README.md): a failing OS import script does not fail
 * `gnt-backup import` (Ganeti 3.0.2 logs a WARNING and exits 0), so check the
 * disk's bytes and the job output, never only the exit status.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { execa } from 'execa';
import { ROOT } from './cli.js';
import { needPrograms, needRoot } from './programs.js';

export const SANDBOX_SCRIPT = resolve(ROOT, '../shared/tools/ganeti-sandbox.sh');
export const NODE = 'node1.gnt.test';
export const EXPORT_DIR = '/var/lib/ganeti/export';
export const FILE_STORAGE_DIR = '/srv/ganeti/file-storage';
/** `serial-wait.py SOCKET LOG TIMEOUT REGEX`: waits for a pattern on an instance's serial console. */
export const SERIAL_WAIT_SCRIPT = resolve(ROOT, '../shared/tools/serial-wait.py');
const LOCK_FILE = '/var/tmp/ganeti-sandbox.test-lock';

/** serial-wait.py on a growing `-serial file:` log; resolves with its verdict line. */
export async function waitSerial(log: string, copy: string, timeoutS: number, pattern: string): Promise<string> {
  const r = await execa('python3', [SERIAL_WAIT_SCRIPT, log, copy, String(timeoutS), pattern], {
    reject: false,
    all: true,
  });
  return String(r.all).trim();
}

/** The serial console socket of a kvm-mode instance (GNT_HYPERVISORS=kvm,fake). */
/** argv of `gnt-backup import` of an export dir onto the sandbox node: file template, no IP or name checks. */
export function backupImportArgv(srcDir: string, instance: string, extra: string[] = []): string[] {
  return [
    'gnt-backup',
    'import',
    '-n',
    NODE,
    '--src-node',
    NODE,
    '--src-dir',
    srcDir,
    '-t',
    'file',
    '--no-ip-check',
    '--no-name-check',
    ...extra,
    instance,
  ];
}

export function serialSocket(instance: string): string {
  return `/var/run/ganeti/kvm-hypervisor/ctrl/${instance}.serial`;
}

export interface CommandOutput {
  exitCode: number;
  /** stdout and stderr interleaved, as an admin would see them. */
  all: string;
}

export interface SandboxLease {
  /** Run a command inside the sandbox (gnt-*, …); never throws on exit status. */
  exec(argv: string[]): Promise<CommandOutput>;
  /** Like exec, but throws with the output when the command fails. */
  gnt(argv: string[]): Promise<string>;
  /** Copy an OS definition folder to /srv/ganeti/os/NAME and check gnt-os list. */
  installOs(dir: string, name: string): Promise<void>;
  /** Stop the cluster, wipe its state and release the lock. Safe to call twice. */
  release(): Promise<void>;
}

/** Run ganeti-sandbox.sh; throws with its output when it fails. */
async function sandbox(args: string[], env: Record<string, string> = {}): Promise<CommandOutput> {
  const r = await execa(SANDBOX_SCRIPT, args, { all: true, reject: false, env, stdin: 'ignore' });
  return { exitCode: r.exitCode ?? -1, all: String(r.all ?? '') };
}

/** Hold an exclusive flock on LOCK_FILE through a child `flock` process. */
async function takeLock(): Promise<ChildProcess> {
  const child = spawn('flock', ['--exclusive', LOCK_FILE, '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((ok, fail) => {
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`flock ${LOCK_FILE} exited with ${code}`)));
    child.stdout!.once('data', () => ok());
  });
  child.removeAllListeners('exit');
  return child;
}

/**
 * Take the sandbox, bring the cluster up (`hypervisors`, default "fake"; the
 * first time also installs Debian's ganeti package) and return the lease.
 */
export async function leaseSandbox(opts: { hypervisors?: string } = {}): Promise<SandboxLease> {
  needRoot();
  await needPrograms('flock', 'ip', 'unshare');
  const lock = await takeLock();
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    try {
      const down = await sandbox(['down']);
      if (down.exitCode !== 0) process.stderr.write(`ganeti-sandbox down failed:\n${down.all}\n`);
    } finally {
      lock.stdin!.end(); // cat sees EOF, flock exits and drops the lock
    }
  };
  try {
    // A cluster left by a crashed run of another hypervisor mode would be reused as is.
    await sandbox(['down']);
    const up = await sandbox(['up'], opts.hypervisors ? { GNT_HYPERVISORS: opts.hypervisors } : {});
    if (up.exitCode !== 0) throw new Error(`ganeti-sandbox up failed (exit ${up.exitCode}):\n${up.all}`);
  } catch (e) {
    await release();
    throw e;
  }
  const exec = async (argv: string[]) => sandbox(['exec', ...argv]);
  return {
    exec,
    gnt: async (argv) => {
      const r = await exec(argv);
      if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.exitCode}):\n${r.all}`);
      return r.all;
    },
    installOs: async (dir, name) => {
      const r = await sandbox(['install-os', dir, name]);
      if (r.exitCode !== 0) throw new Error(`ganeti-sandbox install-os ${dir} ${name} failed:\n${r.all}`);
    },
    release,
  };
}

/** The disk files of a file-template instance, by index (…/<uuid>.file.diskN). */
export async function instanceDiskFiles(instance: string, storageDir = FILE_STORAGE_DIR): Promise<string[]> {
  const dir = join(storageDir, instance);
  const found: [number, string][] = [];
  for (const name of await readdir(dir)) {
    const m = /\.disk(\d+)$/.exec(name);
    if (m) found.push([Number(m[1]), join(dir, name)]);
  }
  found.sort((a, b) => a[0] - b[0]);
  return found.map(([, p]) => p);
}

export interface ExportDisk {
  /** Raw disk image to use as the dump (copied sparse into the export dir). */
  image: string;
  /** diskN_size in config.ini, MiB. */
  sizeMiB: number;
}

export interface ExportDirSpec {
  /** Directory name under /var/lib/ganeti/export. */
  dir: string;
  /** Instance name recorded in config.ini. */
  instance: string;
  os?: string;
  disks: ExportDisk[];
  memoryMiB?: number;
  vcpus?: number;
}

/**
 * Write a minimal Ganeti export directory (config.ini + raw dumps), the form
 * `gnt-backup import` reads (shared/README.md). Dumps are copied, not
 * symlinked: Ganeti refuses dumps outside /var/lib/ganeti/export.
 */
export async function writeExportDir(spec: ExportDirSpec): Promise<string> {
  const dir = join(EXPORT_DIR, spec.dir);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o750 });
  const lines = [
    '[export]',
    'version = 0',
    `os = ${(spec.os ?? 'p2v-image+default').replace(/%/g, '%%')}`,
    '',
    '[instance]',
    `name = ${spec.instance}`,
    `disk_count = ${spec.disks.length}`,
    'nic_count = 0',
  ];
  for (const [i, d] of spec.disks.entries()) {
    const dump = `disk${i}.raw`;
    await execa('cp', ['--sparse=always', d.image, join(dir, dump)]);
    lines.push(`disk${i}_size = ${d.sizeMiB}`, `disk${i}_dump = ${dump}`);
  }
  lines.push('', '[backend]', `memory = ${spec.memoryMiB ?? 128}`, `vcpus = ${spec.vcpus ?? 1}`, '');
  await writeFile(join(dir, 'config.ini'), lines.join('\n'));
  return dir;
}

/** The dump files of an export dir written by `gnt-backup export`, by disk index. */
export async function exportedDumps(exportDir: string): Promise<string[]> {
  const ini = await readFile(join(exportDir, 'config.ini'), 'utf8');
  const count = Number(/^disk_count = (\d+)$/m.exec(ini)?.[1] ?? NaN);
  if (!Number.isInteger(count)) throw new Error(`${exportDir}/config.ini has no disk_count`);
  const dumps: string[] = [];
  for (let i = 0; i < count; i++) {
    const m = new RegExp(`^disk${i}_dump = (.+)$`, 'm').exec(ini);
    if (!m) throw new Error(`${exportDir}/config.ini has no disk${i}_dump`);
    dumps.push(join(exportDir, basename(m[1]!.trim())));
  }
  return dumps;
}
