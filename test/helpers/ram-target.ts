/**
 * bootRamTarget: boot a bootstrap disk through the ramboot initrd under qemu
 * (TCG) with user networking, and wait until its sshd answers. This is the
 * local stand-in for a Ganeti instance started with -H kernel_path,initrd_path
 * on the direct path; tests and the end-to-end check drive it over SSH
 * exactly as `p2v-export --direct` drives a real target.
 *
 *   const t = await bootRamTarget({ kernel, initrd, disk, rootUuid, sshKey, workDir });
 *   await t.ssh('findmnt -n -o FSTYPE /');     // "tmpfs"
 *   await t.ssh('dd of=/dev/vda bs=1M conv=fsync', { input: image });
 *   await t.poweroff();                         // waits for qemu to exit
 *   await t.stop();                             // always safe, kills qemu if alive
 *
 * qemu is registered with the exit-actions registry as soon as it runs, so an
 * interrupted caller does not leave it behind. stop() is idempotent.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { P2vError } from '../../lib/errors.js';
import { onExit } from '../../lib/exit-actions.js';
import { requireProgram } from '../../lib/run.js';
import { freePort } from './ports.js';

export interface RamTargetOptions {
  /** Kernel image (e.g. /boot/vmlinuz-6.1.0-56-amd64). */
  kernel: string;
  /** The ramboot initrd built for that kernel. */
  initrd: string;
  /** Raw disk image of the bootstrap OS: becomes /dev/vda, written by the test. */
  disk: string;
  /** UUID of the bootstrap root filesystem (root=UUID=…). */
  rootUuid: string;
  /** Private key accepted for root by the bootstrap OS. */
  sshKey: string;
  /** Serial log and known_hosts go here. */
  workDir: string;
  memoryMiB?: number;
  /** Extra kernel command line (e.g. "p2v.reserve=64"). */
  append?: string;
  /** How long to wait for sshd (default 300 s: TCG boots take one to two minutes). */
  bootTimeoutMs?: number;
}

export interface RamTarget {
  sshPort: number;
  serialLog: string;
  /** ssh argv (without the remote command) reaching the target as root. */
  sshArgv: string[];
  /** Run a remote shell command; resolves to its trimmed stdout, throws SSH on failure. */
  ssh(command: string, opts?: { input?: Buffer | string; inputFile?: string; timeoutMs?: number }): Promise<string>;
  /** `poweroff` inside the target, then wait for qemu to exit. */
  poweroff(timeoutMs?: number): Promise<void>;
  /** Kill qemu if it still runs and wait for it. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function logTail(path: string, lines = 15): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.replace(/\r/g, '').trimEnd().split('\n').slice(-lines).join('\n');
}

export async function bootRamTarget(opts: RamTargetOptions): Promise<RamTarget> {
  await requireProgram('qemu-system-x86_64');
  await requireProgram('ssh');
  const port = await freePort();
  const serialLog = join(opts.workDir, 'serial.log');
  const knownHosts = join(opts.workDir, 'known_hosts');
  await writeFile(knownHosts, '');
  const append = [`root=UUID=${opts.rootUuid}`, 'console=ttyS0', 'panic=-1', opts.append ?? ''].join(' ').trim();
  // Nested KVM hangs guests on these hosts: pure emulation (see /work/shared/README.md).
  const qemu: ResultPromise = execa(
    'qemu-system-x86_64',
    [
      '-accel',
      'tcg',
      '-m',
      String(opts.memoryMiB ?? 1024),
      '-smp',
      '1',
      '-no-reboot',
      '-kernel',
      opts.kernel,
      '-initrd',
      opts.initrd,
      '-append',
      append,
      '-drive',
      `file=${opts.disk},if=virtio,format=raw,cache=unsafe`,
      '-nic',
      `user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:${port}-:22`,
      '-serial',
      `file:${serialLog}`,
      '-display',
      'none',
      '-monitor',
      'none',
    ],
    { reject: false, stdin: 'ignore', cleanup: true },
  );
  let exited = false;
  void qemu.then(() => {
    exited = true;
  });
  const stop = async () => {
    if (!exited) {
      qemu.kill('SIGTERM');
      const t = setTimeout(() => qemu.kill('SIGKILL'), 5000);
      await qemu;
      clearTimeout(t);
    }
  };
  const handle = onExit(`stop qemu (ramboot target, ssh port ${port})`, stop);

  const sshArgv = [
    '-i',
    opts.sshKey,
    '-p',
    String(port),
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=10',
    '-o',
    'LogLevel=ERROR',
    'root@127.0.0.1',
  ];
  const ssh: RamTarget['ssh'] = async (command, o = {}) => {
    const r = await execa('ssh', [...sshArgv, command], {
      reject: false,
      timeout: o.timeoutMs ?? 600_000,
      ...(o.inputFile ? { inputFile: o.inputFile } : o.input !== undefined ? { input: o.input } : { stdin: 'ignore' }),
    });
    if (r.exitCode !== 0)
      throw new P2vError('SSH', `command on the ramboot target failed (${r.exitCode ?? r.signal}): ${command}`, {
        stderrTail: String(r.stderr).trimEnd().split('\n').slice(-8).join('\n') || undefined,
        hint: `see the target's console log ${serialLog}`,
      });
    return String(r.stdout).trim();
  };

  try {
    const deadline = Date.now() + (opts.bootTimeoutMs ?? 300_000);
    for (;;) {
      if (exited)
        throw new P2vError('COMMAND_FAILED', 'the ramboot target stopped before its sshd answered', {
          stderrTail: await logTail(serialLog),
          hint: `see ${serialLog}`,
        });
      const consoleText = await readFile(serialLog, 'utf8').catch(() => '');
      if (consoleText.includes('p2v-ramboot: ERROR'))
        throw new P2vError('COMMAND_FAILED', 'the ramboot initrd failed on the target', {
          stderrTail: await logTail(serialLog),
          hint: `see ${serialLog}`,
        });
      if (/systemd\[1\]|Welcome to/.test(consoleText)) {
        const r = await execa('ssh', [...sshArgv, 'true'], { reject: false, timeout: 20_000, stdin: 'ignore' });
        if (r.exitCode === 0) break;
      }
      if (Date.now() > deadline)
        throw new P2vError(
          'SSH',
          `the ramboot target's sshd did not answer within ${Math.round((opts.bootTimeoutMs ?? 300_000) / 1000)} s`,
          {
            stderrTail: await logTail(serialLog),
            hint: `see ${serialLog}`,
          },
        );
      await sleep(2000);
    }
  } catch (e) {
    await handle.run();
    throw e;
  }

  return {
    sshPort: port,
    serialLog,
    sshArgv,
    ssh,
    poweroff: async (timeoutMs = 120_000) => {
      // The connection may drop as the system goes down: that is not a failure.
      await execa('ssh', [...sshArgv, 'systemctl poweroff || poweroff'], {
        reject: false,
        timeout: 30_000,
        stdin: 'ignore',
      });
      const deadline = Date.now() + timeoutMs;
      while (!exited && Date.now() < deadline) await sleep(500);
      if (!exited) {
        await handle.run();
        throw new P2vError('COMMAND_FAILED', `the ramboot target did not power off within ${timeoutMs / 1000} s`, {
          stderrTail: await logTail(serialLog),
          hint: `see ${serialLog}`,
        });
      }
      handle.cancel();
    },
    stop: () => handle.run(),
  };
}
