/**
 * GuestFiles: how fixups read the mounted guest. Every guest path ("/etc/fstab")
 * is resolved inside `root` as a chroot would: absolute symlink targets restart
 * at the guest's root and `..` never climbs above it, so a guest symlink such as
 * /etc/hostname -> /../../host/etc/hostname cannot lead a fixup onto the host.
 *
 * The view also carries the changes planned so far in this run: the runner
 * records each fixup's plan before planning the next, so two fixups that edit
 * the same file (grub.cfg gets console= and root=) compose instead of the
 * second overwriting the first.
 */
import { lstat, readFile, readdir, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { P2vError } from '../lib/errors.js';
import type { Change, FixupContext } from './types.js';

/** Symlink hops allowed while resolving one path (the kernel's limit). */
const MAX_SYMLINKS = 40;

type Pending = { kind: 'file'; text: string } | { kind: 'absent' } | { kind: 'symlink'; target: string };

function splitPath(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

/** Host path of `guestPath` under `root`, following symlinks inside the guest only. */
export async function resolveInGuest(root: string, guestPath: string, followLast = true): Promise<string> {
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
      /* absent: the rest is taken literally (a file about to be created) */
    }
    if (!isLink) {
      done = next;
      continue;
    }
    if (++hops > MAX_SYMLINKS) {
      throw new P2vError('FIXUP', `too many levels of symbolic links in the guest path ${guestPath}`, {
        hint: 'repair the symlink loop in the source system, or remove the file it names',
      });
    }
    const target = await readlink(join(root, ...next));
    if (target.startsWith('/')) done = [];
    todo.unshift(...splitPath(target));
  }
  return join(root, ...done);
}

export class GuestFiles {
  private readonly pending = new Map<string, Pending>();
  /** Whether a planned change creates a file or link (SELinux guests then need a relabel). */
  createsFiles = false;

  constructor(readonly root: string) {}

  /** Host path of a guest path (see resolveInGuest). */
  hostPath(guestPath: string, followLast = true): Promise<string> {
    return resolveInGuest(this.root, guestPath, followLast);
  }

  /** Text of a regular guest file, or null when it does not exist (or is not a file). */
  async read(guestPath: string): Promise<string | null> {
    const host = await this.hostPath(guestPath);
    const p = this.pending.get(host);
    if (p) return p.kind === 'file' ? p.text : null;
    try {
      if (!(await stat(host)).isFile()) return null;
      return decodeText(await readFile(host)).text;
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }

  /** Whether anything (file, dir, symlink, even dangling) exists at the path. */
  async exists(guestPath: string, followLast = true): Promise<boolean> {
    const host = await this.hostPath(guestPath, followLast);
    const p = this.pending.get(host);
    if (p) return p.kind !== 'absent';
    try {
      await lstat(host);
      return true;
    } catch (e) {
      if (isMissing(e)) return false;
      throw e;
    }
  }

  /** Whether the path itself (its last component not followed) is a symlink on disk. */
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
    const host = await this.hostPath(guestDir);
    const names = new Set<string>();
    try {
      for (const n of await readdir(host)) names.add(n);
    } catch (e) {
      if (!isMissing(e)) throw e;
    }
    for (const [path, p] of this.pending) {
      if (!path.startsWith(host + '/') || path.slice(host.length + 1).includes('/')) continue;
      const name = path.slice(host.length + 1);
      if (p.kind === 'absent') names.delete(name);
      else names.add(name);
    }
    return [...names].sort(bytewise);
  }

  /** Record a planned change so later reads see it. */
  async record(change: Change): Promise<void> {
    // A chroot command (an initramfs rebuild) writes files of its own.
    if ((change.kind === 'write' && change.before === null) || change.kind === 'symlink' || change.kind === 'chroot') {
      this.createsFiles = true;
    }
    switch (change.kind) {
      case 'write':
        this.pending.set(await this.hostPath(change.path), { kind: 'file', text: change.after });
        break;
      case 'remove':
        this.pending.set(await this.hostPath(change.path, false), { kind: 'absent' });
        break;
      case 'symlink':
        this.pending.set(await this.hostPath(change.path, false), { kind: 'symlink', target: change.target });
        break;
      default:
        break;
    }
  }
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

export function bytewise(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

const views = new WeakMap<FixupContext, GuestFiles>();

/**
 * The view of the guest for one context: the same object for every fixup the
 * runner plans with this context, so planned changes accumulate.
 */
export function guestFiles(ctx: FixupContext): GuestFiles {
  let v = views.get(ctx);
  if (!v) {
    v = new GuestFiles(ctx.root);
    views.set(ctx, v);
  }
  return v;
}

/** Start a new view for ctx (the runner does, before planning). */
export function freshGuestFiles(ctx: FixupContext): GuestFiles {
  const v = new GuestFiles(ctx.root);
  views.set(ctx, v);
  return v;
}

/** Drop the view of ctx (after applying, the guest itself holds the changes). */
export function forgetGuestFiles(ctx: FixupContext): void {
  views.delete(ctx);
}

/** A write change only when the text differs. */
export function writeIfChanged(path: string, before: string | null, after: string, mode?: number): Change[] {
  if (before === after) return [];
  return [mode === undefined ? { kind: 'write', path, before, after } : { kind: 'write', path, before, after, mode }];
}
