/**
 * The live machine: vCPUs, memory and NIC MACs of the system we run on (the
 * source machine, booted from a live image). Not guest knowledge — the guest
 * on the disks says nothing about them — so it lives with the exporter and is
 * handed to inspection.
 */
import { cpus, totalmem } from 'node:os';
import { readdir, readFile, realpath } from 'node:fs/promises';
import type { MachineFacts } from '../guest/types.js';

export async function liveMachine(): Promise<MachineFacts> {
  const nics: { name: string; mac: string; physical: boolean; up: boolean }[] = [];
  for (const name of (await readdir('/sys/class/net').catch(() => [] as string[])).sort()) {
    if (name === 'lo') continue;
    const base = `/sys/class/net/${name}`;
    const read = (f: string) =>
      readFile(`${base}/${f}`, 'utf8').then(
        (s) => s.trim(),
        () => '',
      );
    const [mac, type, oper] = await Promise.all([read('address'), read('type'), read('operstate')]);
    if (type !== '1' || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac) || mac === '00:00:00:00:00:00') continue;
    const physical = !(await realpath(base).catch(() => base)).startsWith('/sys/devices/virtual/');
    nics.push({ name, mac, physical, up: oper === 'up' });
  }
  // On the live image the machine's own NICs are the physical ones; in a VM or container fall back to those up.
  const chosen = nics.some((n) => n.physical) ? nics.filter((n) => n.physical) : nics.filter((n) => n.up);
  return {
    cpus: cpus().length,
    memoryMiB: Math.floor(totalmem() / (1024 * 1024)),
    nics: chosen.map(({ name, mac }) => ({ name, mac })),
  };
}
