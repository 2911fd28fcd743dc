/**
 * Who is working in a staging directory. Each import writes an `owner` file
 * into its `<id>.partial/` (created exclusively, right after the directory)
 * naming its host, process id, the kernel's boot id and the process's start
 * time. Housekeeping removes a partial import only when that process is
 * provably gone: a pid alone is not enough (pids are reused, also across
 * reboots), so the boot id and the start time must match too. What cannot be
 * proven dead (another host on shared storage, an unreadable owner file) is
 * treated as live: a concurrent import must never be removed under its feet.
 */
import { readFileSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { constants } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CREATE_NEW } from './disk-sink.js';

export const OWNER_FILE = 'owner';

/** What the owner file holds. */
export interface Owner {
  host: string;
  pid: number;
  /** /proc/sys/kernel/random/boot_id: changes at every boot. */
  bootId: string;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot): tells a reused pid apart. */
  startTime: string;
}

/** Owner files are a few dozen bytes; anything larger is not ours. */
const MAX_OWNER_BYTES = 4096;

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function bootId(): string {
  return (readProc('/proc/sys/kernel/random/boot_id') ?? '').trim();
}

/** A process's start time, or undefined when there is no such process. */
export function processStartTime(pid: number): string | undefined {
  const stat = readProc(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest[19];
}

export function currentOwner(): Owner {
  return {
    host: hostname(),
    pid: process.pid,
    bootId: bootId(),
    startTime: processStartTime(process.pid) ?? '',
  };
}

/** Write `dir/owner` for this process; fails if one exists (O_EXCL) or is a symlink (O_NOFOLLOW). */
export async function claimOwner(dir: string): Promise<void> {
  const fh = await open(join(dir, OWNER_FILE), CREATE_NEW, 0o600);
  try {
    await fh.writeFile(JSON.stringify(currentOwner()) + '\n');
  } finally {
    await fh.close();
  }
}

/** Remove our owner file (when the directory is kept for later). */
export async function releaseOwner(dir: string): Promise<void> {
  await unlink(join(dir, OWNER_FILE)).catch(() => undefined);
}

/** The owner recorded in `dir`, 'none' when there is no owner file, 'unreadable' when it is not ours. */
export async function readOwner(dir: string): Promise<Owner | 'none' | 'unreadable'> {
  let fh;
  try {
    fh = await open(join(dir, OWNER_FILE), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'none' : 'unreadable';
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > MAX_OWNER_BYTES) return 'unreadable';
    const o = JSON.parse(await fh.readFile('utf8')) as Partial<Owner>;
    if (
      typeof o.host !== 'string' ||
      !Number.isSafeInteger(o.pid) ||
      typeof o.bootId !== 'string' ||
      typeof o.startTime !== 'string'
    )
      return 'unreadable';
    return o as Owner;
  } catch {
    return 'unreadable';
  } finally {
    await fh.close();
  }
}

/** True while the recorded process may still be running (see the header). */
export function ownerAlive(o: Owner): boolean {
  if (o.host !== hostname()) return true;
  if (o.bootId !== bootId()) return false;
  const start = processStartTime(o.pid);
  if (start === undefined) return false;
  return start === o.startTime;
}
