/**
 * block-devices: the target's disks are not called what the source's were
 * (sda becomes vda on kvm, xvda on Xen), so every place that names a disk by
 * its kernel name is rewritten to the filesystem's UUID= (or LABEL=) that the
 * Inspection read: fstab, crypttab, the initramfs-tools resume device, and
 * root=/resume= on every kernel command line. The hypervisor's own name is
 * used only for a partition with neither (a raw swap, an unformatted device).
 * UUID=, LABEL=, PARTUUID=, LVM/MD names and non-disk entries (proc, tmpfs,
 * nfs, bind mounts) are left as they are, as is every line we do not change.
 *
 * Which exported disk a guest disk name is comes from the Inspection's device
 * map. When a name the guest needs to boot is undecided there, planning stops
 * with INSPECTION (before anything is sent) and says how to map it.
 */
import type { Inspection } from '../guest/types.js';
import { requireResolved } from '../guest/device-map.js';
import { parseDeviceSpec } from '../guest/device-names.js';
import { planBootArgs } from './boot-args.js';
import type { Logger } from '../lib/log.js';
import { stableDeviceName } from './device-names.js';
import { writeIfChanged, type GuestFiles } from './guest-files.js';
import { isComment, lines } from './text.js';
import type { Change, Fixup, FixupContext, HypervisorProfile } from './types.js';

type Mapper = (dev: string) => string | null;

/** Rewrite field `field` (0-based) of every uncommented whitespace-separated line. */
export function mapTableField(text: string, field: number, map: Mapper, notes: string[], path: string): string {
  const ls = lines(text);
  for (let i = 0; i < ls.length; i++) {
    const line = ls[i]!;
    if (isComment(line)) continue;
    const re = /\S+/g;
    let m: RegExpExecArray | null;
    let n = 0;
    while ((m = re.exec(line)) !== null && n < field) n++;
    if (!m) continue;
    const to = map(m[0]);
    if (to === null || to === m[0]) continue;
    ls[i] = line.slice(0, m.index) + to + line.slice(m.index + m[0].length);
    notes.push(`${path}: ${m[0]} -> ${to}`);
  }
  return ls.join('\n');
}

function mapper(inspection: Inspection, hv: HypervisorProfile, log: Logger): Mapper {
  const warned = new Set<string>();
  return (dev) => {
    // Only names of a guest disk change; UUID=, LABEL=, PARTUUID=, by-uuid, LVM and MD names are stable already.
    if (parseDeviceSpec(dev)?.kind !== 'disk') return null;
    const r = stableDeviceName(inspection, hv, dev);
    if ('to' in r) return r.to;
    // Only names the guest can boot without get here (requireResolved refused the others).
    if (!warned.has(dev)) {
      warned.add(dev);
      log.warn(`the guest names ${dev}, which is on none of the exported disks: left as it is`);
    }
    return null;
  };
}

async function planTable(
  files: GuestFiles,
  path: string,
  field: number,
  map: Mapper,
  notes: string[],
): Promise<Change[]> {
  const before = await files.read(path);
  if (before === null) return [];
  return writeIfChanged(path, before, mapTableField(before, field, map, notes, path));
}

async function planResume(files: GuestFiles, map: Mapper, notes: string[]): Promise<Change[]> {
  const path = '/etc/initramfs-tools/conf.d/resume';
  const before = await files.read(path);
  if (before === null) return [];
  const after = lines(before)
    .map((l) => {
      const m = /^(\s*RESUME=)(["']?)([^"'\s]+)\2(\s*)$/.exec(l);
      if (!m) return l;
      const to = map(m[3]!);
      if (to === null || to === m[3]) return l;
      notes.push(`${path}: ${m[3]} -> ${to}`);
      return `${m[1]}${m[2]}${to}${m[2]}${m[4]}`;
    })
    .join('\n');
  return writeIfChanged(path, before, after);
}

/** Argument edit for root= and resume= (and the cryptdevice's device). */
function argsMapper(map: Mapper, seen: Set<string>): (args: string[]) => string[] {
  return (args) =>
    args.map((a) => {
      const m = /^(root|resume)=(\/dev\/.+)$/.exec(a);
      if (!m) return a;
      const to = map(m[2]!);
      if (to === null) return a;
      seen.add(`${m[2]} -> ${to}`);
      return `${m[1]}=${to}`;
    });
}

export const blockDevices: Fixup = {
  name: 'block-devices',
  description: 'name disks by filesystem UUID (or label) in fstab, crypttab, resume and root=',
  appliesTo: () => true,
  async plan(ctx: FixupContext) {
    const out = { fixup: 'block-devices', summary: [] as string[], changes: [] as Change[] };
    const os = ctx.inspection.os;
    if (!os) return out;
    requireResolved(os.deviceMap);
    const files = ctx.files;
    const map = mapper(ctx.inspection, ctx.options.hypervisor, ctx.log);
    const notes: string[] = [];
    out.changes.push(...(await planTable(files, '/etc/fstab', 0, map, notes)));
    out.changes.push(...(await planTable(files, '/etc/crypttab', 1, map, notes)));
    out.changes.push(...(await planResume(files, map, notes)));
    const seen = new Set<string>();
    const boot = await planBootArgs(files, os, argsMapper(map, seen), {
      defaultGrubVars: ['GRUB_CMDLINE_LINUX', 'GRUB_CMDLINE_LINUX_DEFAULT'],
    });
    out.changes.push(...boot);
    for (const ch of boot) if (ch.kind === 'write') notes.push(`${ch.path}: ${[...seen].join(', ')}`);
    out.summary = notes;
    return out;
  },
};
