/**
 * checkSourceDisk: refuse, before nbdkit ever runs, a --disk that cannot be a
 * disk: missing, a directory, a character device (/dev/null, a tty), a FIFO
 * or socket, an empty file, or a block device with no medium. Only block
 * devices and non-empty regular files pass; the message says what it is.
 *
 * checkSourceNotMountedRw: refuse a source block device that the running
 * system has mounted read-write, directly or through one of its partitions,
 * or through a device stacked on it (LVM, dm-crypt, md), or uses as active
 * swap: its blocks change under the copy and the result would be torn.
 * Image files are not checked (they are the user's business).
 *
 *   checkSourceDisk(source): Promise<'block' | 'file'>   throws P2vError('USAGE')
 *   checkSourceNotMountedRw(source): Promise<void>   throws P2vError('SOURCE_BUSY')
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { run, runText } from '../lib/run.js';
import { unescapeMountinfo } from './disk-files.js';

const DISK_HINT = 'name a block device (/dev/sda) or a disk image file';

/** Kernel device numbers: the same split as glibc's major()/minor(). */
function majMinOf(rdev: number): string {
  return `${Math.floor(rdev / 256) & 0xfff}:${(rdev & 0xff) | ((rdev >> 12) & 0xfff00)}`;
}

export async function checkSourceDisk(source: string): Promise<'block' | 'file'> {
  let st;
  try {
    st = await stat(source);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new P2vError('USAGE', `source disk ${source} does not exist`, { hint: DISK_HINT });
    throw new P2vError('USAGE', `source disk ${source} cannot be examined: ${(e as Error).message}`, {
      hint: DISK_HINT,
    });
  }
  const refuse = (what: string) =>
    new P2vError('USAGE', `source disk ${source} is ${what}, not a block device or disk image`, { hint: DISK_HINT });
  if (st.isDirectory()) throw refuse('a directory');
  if (st.isCharacterDevice()) throw refuse('a character device');
  if (st.isFIFO()) throw refuse('a FIFO');
  if (st.isSocket()) throw refuse('a socket');
  if (st.isFile()) {
    if (st.size === 0)
      throw new P2vError('USAGE', `source disk ${source} is an empty file`, {
        hint: 'name a disk image with the disk in it (or the block device itself)',
      });
    return 'file';
  }
  if (!st.isBlockDevice()) throw refuse('neither a file nor a device');
  // A block device with no medium (an unattached loop device, an empty card reader) reads as 0 bytes.
  // sysfs first (no open needed); a device the kernel creates on first open (a loop minor never used) has
  // no sysfs entry yet, so then ask the device itself.
  let sectors = await readFile(`/sys/dev/block/${majMinOf(st.rdev)}/size`, 'utf8').catch(() => undefined);
  if (sectors === undefined) {
    const r = await run('blockdev', ['--getsz', source], { allowFailure: true });
    if (r.exitCode === 0) sectors = String(r.stdout);
  }
  if (sectors !== undefined && Number(sectors.trim()) === 0)
    throw new P2vError('USAGE', `source disk ${source} is a block device of size 0 (no medium, or not attached)`, {
      hint: 'name the disk that holds the machine: lsblk lists them with their sizes',
    });
  return 'block';
}

/** "MAJ:MIN" of the block device and of everything built from it (partitions, holders), with names. */
async function relatedDevices(majMin: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const visit = async (link: string) => {
    let dev: string;
    let sysPath: string;
    try {
      sysPath = await realpath(link);
      dev = (await readFile(`${sysPath}/dev`, 'utf8')).trim();
    } catch {
      return;
    }
    if (out.has(dev)) return;
    const name = basename(sysPath);
    out.set(dev, name);
    const entries = await readdir(sysPath).catch(() => [] as string[]);
    // Partitions are subdirectories named after the disk (sda1, nvme0n1p1, loop0p1).
    for (const e of entries) if (e.startsWith(name) && e !== name) await visit(`${sysPath}/${e}`);
    for (const h of await readdir(`${sysPath}/holders`).catch(() => [] as string[]))
      await visit(`/sys/class/block/${h}`);
  };
  await visit(`/sys/dev/block/${majMin}`);
  return out;
}

export async function checkSourceNotMountedRw(source: string): Promise<void> {
  let st;
  try {
    st = await stat(source);
  } catch {
    throw new P2vError('USAGE', `source disk ${source} does not exist`, {
      hint: 'name a block device (/dev/sda) or a disk image file',
    });
  }
  if (!st.isBlockDevice()) return;
  const devs = await relatedDevices(majMinOf(st.rdev));
  if (devs.size === 0) devs.set(majMinOf(st.rdev), source);

  const byName = new Map([...devs.values()].map((n) => [n, n]));
  const busy: string[] = [];
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of info.split('\n')) {
    if (!line) continue;
    const [pre, post] = line.split(' - ');
    const f = pre!.split(' ');
    const [, mountSource, superOpts = ''] = (post ?? '').split(' ');
    // btrfs and some others report an anonymous device number: match the mount source's name too.
    let name = devs.get(f[2] ?? '');
    if (!name && mountSource?.startsWith('/dev/'))
      name = byName.get(basename(await realpath(mountSource).catch(() => mountSource)));
    // Writable if either the mount or the superblock is rw (a ro bind of a rw fs is still written to).
    if (name && (f[5]?.split(',').includes('rw') || superOpts.split(',').includes('rw')))
      busy.push(`${name} on ${unescapeMountinfo(f[4] ?? '?')}`);
  }
  const swaps = await readFile('/proc/swaps', 'utf8').catch(() => '');
  for (const l of swaps.split('\n').slice(1)) {
    const dev = l.split(/\s+/)[0];
    if (!dev) continue;
    try {
      const s = await stat(dev);
      if (!s.isBlockDevice()) continue;
      const mm = majMinOf(s.rdev);
      if (devs.has(mm)) busy.push(`${devs.get(mm)} as active swap`);
    } catch {
      /* gone */
    }
  }
  if (busy.length)
    throw new P2vError('SOURCE_BUSY', `${source} is in use read-write by this system (${busy.join(', ')})`, {
      hint: 'boot the machine from a live image so its disks are not mounted, or unmount them (swapoff for swap) first',
    });
}

/** The source disk's size in bytes (a block device's, or an image file's). */
export async function sourceSize(source: string): Promise<number> {
  const st = await stat(source);
  if (st.isFile()) return st.size;
  return Number(await runText('blockdev', ['--getsize64', source], { what: `reading the size of ${source}` }));
}
