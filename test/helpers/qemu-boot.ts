/**
 * bootToLogin: boot a disk image under qemu TCG (nested KVM hangs guest
 * kernels here) with its console on a serial log, and return when
 * `HOSTNAME login:` appears on it. qemu is killed before it returns or
 * throws; the serial log stays for the caller's assertions and messages.
 *
 *   const r = await bootToLogin({ disk, hostname: 'uefinew', firmware: { kvmExtra }, log, mac });
 *   r.seconds   from qemu's start to the login prompt
 *   r.console   the serial console text (\r and terminal escape sequences removed)
 *
 * firmware:
 *   'bios'           qemu's own SeaBIOS;
 *   'uefi'           a fresh OVMF: OVMF_CODE_4M.fd read-only and a new copy of
 *                    OVMF_VARS_4M.fd as the two pflash drives, so no boot
 *                    entry exists (the firmware finds only what is on the disk);
 *   { kvmExtra }     the words of a Ganeti `kvm_extra` hypervisor parameter,
 *                    split as Ganeti's kvm hypervisor splits them (on single
 *                    spaces) and appended to the command line.
 *
 * The disk is attached as Ganeti's kvm hypervisor attaches it (virtio) unless
 * `bus: 'ide'` (a physical machine's disk); the NIC is virtio-net with `mac`,
 * or none when mac is null. A boot that reaches emergency mode, panics or
 * drops to the initramfs shell fails at once, without waiting for the timeout.
 *
 *   ovmfBootLines(console)   OVMF's "BdsDxe: …" lines: which boot option it loaded and started
 */
import { copyFile, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { SERIAL_WAIT_SCRIPT } from './ganeti.js';
import { needPrograms } from './programs.js';

export type Firmware = 'bios' | 'uefi' | { kvmExtra: string };

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

/** What a failed Linux boot prints on the console. */
export const BAD_BOOT =
  /emergency mode|Timed out waiting for device|Dependency failed for|ALERT!|Kernel panic|Gave up waiting/i;
/** Stops the wait early: nothing good comes after these. */
const FATAL = String.raw`emergency mode|Kernel panic|ALERT!|Gave up waiting`;

export interface BootOptions {
  /** Raw disk image. */
  disk: string;
  /** Waits for `${hostname} login:`. */
  hostname: string;
  firmware: Firmware;
  /** Serial console log (qemu `-serial file:`); `${log}.vars.fd` holds the OVMF variables of a 'uefi' boot. */
  log: string;
  /** virtio (default, as Ganeti's kvm hypervisor) or ide (a physical machine's disk). */
  bus?: 'virtio' | 'ide';
  /** Do not write the disk (qemu snapshot=on). */
  snapshot?: boolean;
  /** MAC of a virtio-net NIC on qemu's user network; null: no NIC. */
  mac?: string | null;
  memoryMiB?: number;
  /** Seconds to wait for the prompt (default 900: OVMF under TCG is slow). */
  timeoutS?: number;
}

export interface BootResult {
  seconds: number;
  console: string;
  argv: string[];
}

/** The firmware's part of the qemu command line. */
export async function firmwareArgs(firmware: Firmware, varsCopy: string): Promise<string[]> {
  if (firmware === 'bios') return [];
  if (firmware === 'uefi') {
    for (const f of [OVMF_CODE, OVMF_VARS])
      if (!existsSync(f)) throw new Error(`${f} is missing: apt-get install ovmf (or run scripts/setup.sh --slow)`);
    await copyFile(OVMF_VARS, varsCopy);
    return [
      '-drive',
      `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
      '-drive',
      `if=pflash,format=raw,unit=1,file=${varsCopy}`,
    ];
  }
  // Ganeti's kvm hypervisor: kvm_cmd.extend(hvp[constants.HV_KVM_EXTRA].split(" ")).
  return firmware.kvmExtra.split(' ');
}

export async function bootToLogin(opts: BootOptions): Promise<BootResult> {
  await needPrograms('qemu-system-x86_64', 'python3');
  const bus = opts.bus ?? 'virtio';
  const drive = `file=${opts.disk},if=${bus},format=raw${opts.snapshot ? ',snapshot=on' : ''}`;
  const nic =
    opts.mac === null ? ['-nic', 'none'] : ['-nic', `user,model=virtio-net-pci,mac=${opts.mac ?? '52:54:00:aa:bb:ee'}`];
  const argv = [
    '-accel',
    'tcg',
    '-m',
    String(opts.memoryMiB ?? 1024),
    '-drive',
    drive,
    ...nic,
    '-serial',
    `file:${opts.log}`,
    '-display',
    'none',
    '-no-reboot',
    ...(await firmwareArgs(opts.firmware, `${opts.log}.vars.fd`)),
  ];
  const t0 = performance.now();
  const qemu = execa('qemu-system-x86_64', argv, { reject: false, stdin: 'ignore', all: true });
  const timeoutS = opts.timeoutS ?? 900;
  const wait = execa(
    'python3',
    [SERIAL_WAIT_SCRIPT, opts.log, `${opts.log}.wait`, String(timeoutS), `${opts.hostname} login:|${FATAL}`],
    { reject: false, all: true },
  );
  const text = async () => plainConsole(await readFile(opts.log, 'utf8').catch(() => ''));
  try {
    const first = await Promise.race([wait.then(() => 'wait' as const), qemu.then(() => 'qemu' as const)]);
    const seconds = (performance.now() - t0) / 1000;
    const console = await text();
    const tail = `serial console (${opts.log}), last 4000 characters:\n${console.slice(-4000)}`;
    if (first === 'qemu') {
      const q = await qemu;
      throw new Error(
        `qemu exited (${q.exitCode}) before "${opts.hostname} login:"\nqemu ${argv.join(' ')}\n${String(q.all)}\n${tail}`,
      );
    }
    const verdict = String((await wait).all).trim();
    if (/^(TIMEOUT|EOF) /.test(verdict))
      throw new Error(`no "${opts.hostname} login:" within ${timeoutS} s (${verdict})\n${tail}`);
    if (!verdict.startsWith('MATCH')) throw new Error(`${SERIAL_WAIT_SCRIPT} failed: ${verdict}\n${tail}`);
    if (!new RegExp(`^${opts.hostname} login:`, 'm').test(console))
      throw new Error(`the boot failed before "${opts.hostname} login:" (${verdict})\n${tail}`);
    return { seconds, console, argv };
  } finally {
    if (wait.exitCode === null) wait.kill('SIGKILL');
    if (qemu.exitCode === null) qemu.kill('SIGKILL');
    await Promise.allSettled([wait, qemu]);
  }
}

/** Console text without \r and without the terminal escape sequences OVMF, GRUB and systemd colour it with. */
export function plainConsole(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\r/g, '').replace(/\x1b(\[[0-9;?=]*[A-Za-z]|[()][A-Za-z0-9])/g, '');
}

/** OVMF's boot manager lines ("BdsDxe: loading|starting|failed to load Boot0001 "…" from <device path>"). */
export function ovmfBootLines(console: string): string[] {
  return console.split('\n').filter((l) => /BdsDxe: /.test(l));
}
