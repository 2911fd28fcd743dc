/**
 * Boot a raw disk under qemu TCG the way Ganeti's kvm hypervisor starts an
 * instance here (paravirtual disk and NIC, serial console; ../shared/README.md)
 * and wait for a pattern on its console. The block the boot tests
 * (boot-kvm, fit-boot, lvm-boot) each spell out, as one helper:
 *
 *   const boot = await bootTcg({ disk, work, mac, pattern: 'newname login:' });
 *   expect(boot.verdict, boot.tail()).toMatch(/^MATCH/);
 *   await boot.stop();
 *
 * Never with KVM: nested KVM hangs guest kernels on these machines.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { waitSerial } from './ganeti.js';

/** Console lines that mean the guest did not boot cleanly. */
export const BAD_BOOT = /emergency mode|Timed out waiting for device|Dependency failed for|ALERT!|Kernel panic/i;

export interface TcgBootOptions {
  /** Raw disk image, attached as virtio. */
  disk: string;
  /** Directory for the console log and its copy (`<name>-serial.log`). */
  work: string;
  /** MAC of the virtio NIC: a new one, as Ganeti gives a new instance. */
  mac: string;
  /** serial-wait.py regex to wait for. */
  pattern: string;
  timeoutS?: number;
  memoryMiB?: number;
  /** Writes go to a temporary overlay, the image stays as it is (qemu `snapshot=on`). */
  snapshot?: boolean;
  /** Names the log files. */
  name?: string;
}

export interface TcgBoot {
  /** serial-wait.py's verdict line: MATCH … or a timeout. */
  verdict: string;
  /** Seconds from qemu's start to the verdict. */
  seconds: number;
  /** The console so far, carriage returns removed. */
  console(): Promise<string>;
  /** The last 4000 characters of the console, for an assertion message. */
  tail(): Promise<string>;
  /** Kill qemu and wait for it. */
  stop(): Promise<void>;
  qemu: ResultPromise;
}

export async function bootTcg(o: TcgBootOptions): Promise<TcgBoot> {
  const name = o.name ?? 'boot';
  const log = join(o.work, `${name}-serial.log`);
  const t0 = performance.now();
  const qemu = execa(
    'qemu-system-x86_64',
    [
      '-accel',
      'tcg',
      '-m',
      String(o.memoryMiB ?? 768),
      '-drive',
      `file=${o.disk},if=virtio,format=raw${o.snapshot ? ',snapshot=on' : ''}`,
      '-nic',
      `user,model=virtio-net-pci,mac=${o.mac}`,
      '-serial',
      `file:${log}`,
      '-display',
      'none',
      '-no-reboot',
    ],
    { reject: false, stdin: 'ignore', all: true },
  );
  const verdict = await waitSerial(log, join(o.work, `${name}-match.log`), o.timeoutS ?? 600, o.pattern);
  const seconds = (performance.now() - t0) / 1000;
  const consoleText = async () => (await readFile(log, 'utf8').catch(() => '')).replace(/\r/g, '');
  return {
    verdict,
    seconds,
    console: consoleText,
    tail: async () => `qemu ${qemu.exitCode ?? 'running'}; console:\n${(await consoleText()).slice(-4000)}`,
    stop: async () => {
      if (qemu.exitCode === null) qemu.kill('SIGKILL');
      await qemu;
    },
    qemu,
  };
}
