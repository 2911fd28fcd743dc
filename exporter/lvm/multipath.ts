/**
 * Multipath is seen on the live system, not in the disk's bytes: the source
 * is a device-mapper device whose dm uuid starts with "mpath-", or a path
 * device held by one. Named so inspection refuses it with MD RAID and LUKS in
 * one message (guest/inspect), before anything is sent.
 *
 *   multipathSources(sources): Promise<string[]>   — "multipath device on /dev/sdb", …
 */
import { readdir, readFile, realpath } from 'node:fs/promises';
import { basename } from 'node:path';

async function dmUuid(name: string): Promise<string> {
  return (await readFile(`/sys/block/${name}/dm/uuid`, 'utf8').catch(() => '')).trim();
}

export async function multipathSources(sources: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const s of sources) {
    if (!s.startsWith('/dev/')) continue;
    const name = basename(await realpath(s).catch(() => s));
    const holders = await readdir(`/sys/block/${name}/holders`).catch(() => [] as string[]);
    const uuids = [await dmUuid(name), ...(await Promise.all(holders.map(dmUuid)))];
    if (uuids.some((u) => u.startsWith('mpath-'))) out.push(`multipath device on ${s}`);
  }
  return out;
}
