/**
 * selinux-relabel: files we create from the live image carry no SELinux label,
 * and an enforcing guest denies its services access to unlabelled files (a
 * NetworkManager keyfile, a getty link). When the guest runs SELinux and an
 * earlier fixup created a file, we ask for a full relabel on first boot with
 * /.autorelabel, as virt-v2v does; that boot relabels and reboots once.
 * Files we change keep their label: the runner writes them in place.
 */
import { getShellVar } from '../guest/shell-vars.js';
import type { Fixup, FixupContext, PlannedFixup } from './types.js';

export const selinuxRelabel: Fixup = {
  name: 'selinux-relabel',
  description: 'ask an SELinux guest to relabel on first boot when fixups created files',
  appliesTo: () => true,
  async plan(ctx: FixupContext): Promise<PlannedFixup> {
    const out: PlannedFixup = { fixup: 'selinux-relabel', summary: [], changes: [] };
    if (!ctx.inspection.os) return out;
    const files = ctx.files;
    const config = await files.read('/etc/selinux/config');
    const mode = config === null ? undefined : getShellVar(config, 'SELINUX');
    if (mode !== 'enforcing' && mode !== 'permissive') return out;
    if (!files.createsFiles || (await files.exists('/.autorelabel'))) return out;
    out.changes.push({ kind: 'write', path: '/.autorelabel', before: null, after: '', mode: 0o644 });
    out.summary.push('/.autorelabel: SELinux relabels the new files on first boot');
    return out;
  },
};
