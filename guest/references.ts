/**
 * Where the guest names block devices, as GuestReferences for the device map:
 * fstab entries, crypttab entries, initramfs-tools' RESUME=, and root=/resume=
 * on its kernel command lines. Parsing only; whether a name can be resolved is
 * device-map.ts's question.
 *
 *   parseFstab(text): FstabEntry[]
 *   fstabReferences(entries): GuestReference[]
 *   crypttabReferences(text): GuestReference[]
 *   resumeReferences(text, file): GuestReference[]
 *   kernelArgReferences(lines): GuestReference[]
 */
import type { KernelCommandLine } from './boot-configs.js';
import type { GuestReference } from './device-map.js';

export interface FstabEntry {
  spec: string;
  file: string;
  vfstype: string;
  options: string[];
}

/** Where initramfs-tools keeps the resume device. */
export const INITRAMFS_RESUME = '/etc/initramfs-tools/conf.d/resume';

/** Filesystem types that never name a local block device. */
const VIRTUAL_FS = new Set([
  'tmpfs',
  'proc',
  'sysfs',
  'devpts',
  'nfs',
  'nfs4',
  'cifs',
  'smbfs',
  'none',
  'bind',
  'devtmpfs',
  'efivarfs',
  'fuse',
  'sshfs',
  'glusterfs',
  'ceph',
]);

/** fstab(5): whitespace-separated fields with \040-style octal escapes. */
export function parseFstab(text: string): FstabEntry[] {
  const unesc = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: FstabEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const f = line.split(/\s+/);
    if (f.length < 2) continue;
    out.push({
      spec: unesc(f[0]!),
      file: unesc(f[1]!),
      vfstype: f[2] ?? 'auto',
      options: (f[3] ?? 'defaults').split(','),
    });
  }
  return out;
}

const optional = (options: string[]) => options.includes('noauto') || options.includes('nofail');

/** The fstab entries that name a local block device: mounts (absolute mount points) and swap. */
export function fstabReferences(entries: FstabEntry[], file = '/etc/fstab'): GuestReference[] {
  const out: GuestReference[] = [];
  for (const e of entries) {
    if (VIRTUAL_FS.has(e.vfstype) || e.options.includes('bind')) continue;
    if (e.vfstype === 'swap') out.push({ spec: e.spec, file, use: 'swap', optional: optional(e.options) });
    else if (e.file.startsWith('/'))
      out.push({
        spec: e.spec,
        file,
        use: 'mount',
        mountpoint: e.file,
        vfstype: e.vfstype,
        optional: optional(e.options),
      });
  }
  return out;
}

/** crypttab(5): NAME DEVICE [KEYFILE [OPTIONS]]. */
export function crypttabReferences(text: string, file = '/etc/crypttab'): GuestReference[] {
  const out: GuestReference[] = [];
  for (const raw of text.split('\n')) {
    const f = raw.trim().split(/\s+/);
    if (!f[0] || f[0].startsWith('#') || !f[1]) continue;
    out.push({ spec: f[1], file, use: 'crypt', optional: optional((f[3] ?? '').split(',')) });
  }
  return out;
}

/** RESUME= in initramfs-tools' conf.d/resume (a swap partition the initramfs resumes from). */
export function resumeReferences(text: string, file = INITRAMFS_RESUME): GuestReference[] {
  const out: GuestReference[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*RESUME=(["']?)([^"'\s]+)\1\s*$/.exec(line);
    if (m) out.push({ spec: m[2]!, file, use: 'resume', optional: false });
  }
  return out;
}

/**
 * root= and resume= of kernel command lines. A resume= with resume_offset=
 * names the filesystem that holds a swap file, not a swap partition: a
 * 'device' reference, whose type is not checked.
 */
export function kernelArgReferences(lines: KernelCommandLine[]): GuestReference[] {
  const out: GuestReference[] = [];
  for (const l of lines) {
    const words = l.args.split(/\s+/).map((w) => w.replace(/^["']|["']$/g, ''));
    const swapFile = words.some((w) => w.startsWith('resume_offset='));
    for (const w of words) {
      const m = /^(root|resume)=(.+)$/.exec(w);
      if (!m) continue;
      if (m[1] === 'root') out.push({ spec: m[2]!, file: l.file, use: 'root', optional: false });
      else if (swapFile) out.push({ spec: m[2]!, file: l.file, use: 'device', optional: false });
      else out.push({ spec: m[2]!, file: l.file, use: 'resume', optional: false });
    }
  }
  return out;
}
