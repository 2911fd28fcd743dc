/** What the slow tests need to know about this host: its Debian kernel, and processes by command line. */
import { readdir, readFile } from 'node:fs/promises';

/** The newest installed Debian kernel (the ramboot initrd is built for it and qemu boots it). */
export async function hostKernel(): Promise<{ release: string; vmlinuz: string }> {
  const releases = (await readdir('/lib/modules').catch(() => [] as string[]))
    .filter((r) => r.endsWith('-amd64'))
    .sort();
  const release = releases.at(-1);
  if (!release)
    throw new Error('no Debian kernel installed: apt-get install linux-image-amd64 (or run scripts/setup.sh --slow)');
  return { release, vmlinuz: `/boot/vmlinuz-${release}` };
}

/** Pids whose command line mentions `text` (a disk image path finds the qemu using it). */
export async function processesNaming(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const p of await readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const cmd = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(text)) pids.push(Number(p));
  }
  return pids;
}
