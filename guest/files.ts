/**
 * Guest file access: the one rule by which every part of ganeti-p2v turns a
 * guest path ("/etc/fstab") into a host path under the directory where the
 * guest is mounted. Inspection, mounting the guest's fstab and the fixups all
 * use it, because a guest is hostile input: its symlinks must never lead us
 * onto the host.
 *
 * The rule, as a chroot would see it:
 *   - an absolute symlink target restarts at the guest's root;
 *   - `..` never climbs above the guest's root (it stays there);
 *   - a component that does not exist ends the resolution: the rest is taken
 *     literally (a file about to be created), still under root;
 *   - more than 40 symlink hops (the kernel's limit) is a symlink loop: a
 *     P2vError('INSPECTION') naming the path, never a hang, never a guess.
 *     Callers do not catch it: a guest whose configuration loops is reported.
 *
 *   resolveGuestPath(root, guestPath, followLast?): Promise<string>
 *   new GuestTree(root): read / exists / isFile / isDir / list / isSymlink / hostPath
 */
import { lstat, open, readdir, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { P2vError } from '../lib/errors.js';

/** Symlink hops allowed while resolving one path (the kernel's limit). */
export const MAX_SYMLINK_HOPS = 40;

/** Most bytes read of one guest text file: configuration files are small; a bigger one is cut. */
export const MAX_GUEST_TEXT = 16 << 20;

function splitPath(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

/**
 * Host path of `guestPath` under `root`, following symlinks inside the guest
 * only (see the rule above). With followLast = false a symlink in the last
 * component is not followed (to remove or replace the link itself).
 */
export async function resolveGuestPath(root: string, guestPath: string, followLast = true): Promise<string> {
  const todo = splitPath(guestPath);
  let done: string[] = [];
  let hops = 0;
  while (todo.length > 0) {
    const part = todo.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    const next = [...done, part];
    if (todo.length === 0 && !followLast) {
      done = next;
      break;
    }
    let isLink = false;
    try {
      isLink = (await lstat(join(root, ...next))).isSymbolicLink();
    } catch {
      /* absent: the rest is taken literally */
    }
    if (!isLink) {
      done = next;
      continue;
    }
    if (++hops > MAX_SYMLINK_HOPS) {
      throw new P2vError('INSPECTION', `too many levels of symbolic links in the guest path ${guestPath}`, {
        hint: 'repair the symlink loop in the source system, or remove the file it names',
      });
    }
    const target = await readlink(join(root, ...next));
    if (target.startsWith('/')) done = [];
    todo.unshift(...splitPath(target));
  }
  return join(root, ...done);
}

export function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export function bytewise(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Guest files are text in UTF-8 or, in older systems, some 8-bit charset (a
 * Latin-1 comment in fstab). Text that is not valid UTF-8 is read as Latin-1,
 * which maps every byte to one character, so writing it back the same way
 * keeps every untouched byte exact.
 */
export function decodeText(data: Buffer): { text: string; encoding: 'utf8' | 'latin1' } {
  const text = data.toString('utf8');
  if (Buffer.byteLength(text) === data.length && Buffer.from(text).equals(data)) return { text, encoding: 'utf8' };
  return { text: data.toString('latin1'), encoding: 'latin1' };
}

/** Read-only view of a mounted guest through resolveGuestPath. */
export class GuestTree {
  constructor(readonly root: string) {}

  hostPath(guestPath: string, followLast = true): Promise<string> {
    return resolveGuestPath(this.root, guestPath, followLast);
  }

  /** Text of a regular guest file (at most MAX_GUEST_TEXT bytes), or null when it is absent or not a file. */
  async read(guestPath: string): Promise<string | null> {
    const host = await this.hostPath(guestPath);
    try {
      if (!(await stat(host)).isFile()) return null;
      const fh = await open(host, 'r');
      try {
        const buf = Buffer.alloc(Math.min((await fh.stat()).size, MAX_GUEST_TEXT));
        const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
        return decodeText(buf.subarray(0, bytesRead)).text;
      } finally {
        await fh.close();
      }
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }

  /** The first `n` bytes of a regular file (an ELF header), or null. */
  async head(guestPath: string, n: number): Promise<Buffer | null> {
    const host = await this.hostPath(guestPath);
    try {
      if (!(await stat(host)).isFile()) return null;
      const fh = await open(host, 'r');
      try {
        const buf = Buffer.alloc(n);
        const { bytesRead } = await fh.read(buf, 0, n, 0);
        return buf.subarray(0, bytesRead);
      } finally {
        await fh.close();
      }
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }

  /** Whether anything (file, dir, symlink, even dangling) exists at the path. */
  async exists(guestPath: string, followLast = true): Promise<boolean> {
    try {
      await lstat(await this.hostPath(guestPath, followLast));
      return true;
    } catch (e) {
      if (isMissing(e)) return false;
      throw e;
    }
  }

  async isFile(guestPath: string): Promise<boolean> {
    return (await this.statOf(guestPath))?.isFile() ?? false;
  }

  async isDir(guestPath: string): Promise<boolean> {
    return (await this.statOf(guestPath))?.isDirectory() ?? false;
  }

  /** Whether the path itself (its last component not followed) is a symlink. */
  async isSymlink(guestPath: string): Promise<boolean> {
    try {
      return (await lstat(await this.hostPath(guestPath, false))).isSymbolicLink();
    } catch (e) {
      if (isMissing(e)) return false;
      throw e;
    }
  }

  /** Names in a guest directory, sorted bytewise; [] when it does not exist. */
  async list(guestDir: string): Promise<string[]> {
    try {
      return (await readdir(await this.hostPath(guestDir))).sort(bytewise);
    } catch (e) {
      if (isMissing(e)) return [];
      throw e;
    }
  }

  private async statOf(guestPath: string) {
    try {
      return await stat(await this.hostPath(guestPath));
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }
}
