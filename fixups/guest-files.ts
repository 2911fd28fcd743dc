/**
 * GuestFiles: the fixups' view of the mounted guest — guest/files.ts's
 * GuestTree (one path rule for all of ganeti-p2v: symlinks resolved inside the
 * guest root, never onto the host; a loop is an INSPECTION error) plus the
 * changes planned so far in this run. The runner creates one view per
 * planning run, puts it on the FixupContext (`ctx.files`) and records each
 * fixup's plan in it before planning the next, so two fixups that edit the
 * same file (grub.cfg gets console= and root=) compose instead of the second
 * overwriting the first. No module keeps a view of its own.
 */
import { bytewise, GuestTree } from '../guest/files.js';
import type { Change } from './types.js';

type Pending = { kind: 'file'; text: string } | { kind: 'absent' } | { kind: 'symlink'; target: string };

export class GuestFiles extends GuestTree {
  private readonly pending = new Map<string, Pending>();
  /** Whether a planned change creates a file or link (SELinux guests then need a relabel). */
  createsFiles = false;

  /** Text of a regular guest file as planned so far, or null when it does not exist (or is not a file). */
  override async read(guestPath: string): Promise<string | null> {
    const p = this.pending.get(await this.hostPath(guestPath));
    if (p) return p.kind === 'file' ? p.text : null;
    return super.read(guestPath);
  }

  /** Whether anything (file, dir, symlink, even dangling) exists at the path, as planned so far. */
  override async exists(guestPath: string, followLast = true): Promise<boolean> {
    const p = this.pending.get(await this.hostPath(guestPath, followLast));
    if (p) return p.kind !== 'absent';
    return super.exists(guestPath, followLast);
  }

  /** Names in a guest directory as planned so far, sorted bytewise; [] when it does not exist. */
  override async list(guestDir: string): Promise<string[]> {
    const host = await this.hostPath(guestDir);
    const names = new Set(await super.list(guestDir));
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

/** A write change only when the text differs. */
export function writeIfChanged(path: string, before: string | null, after: string, mode?: number): Change[] {
  if (before === after) return [];
  return [mode === undefined ? { kind: 'write', path, before, after } : { kind: 'write', path, before, after, mode }];
}
