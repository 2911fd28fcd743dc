/**
 * Edits the kernel command lines of every boot entry the guest has (which
 * files and lines: guest/boot-configs.ts kernelArgSites, shared with
 * inspection; this module lists no path of its own): the `linux`
 * lines of the generated grub.cfg (`kernel` lines of a grub-legacy menu.lst,
 * `APPEND` lines of extlinux.conf), BLS entries
 * (/boot/loader/entries/*.conf `options`, with RHEL 8's `$kernelopts` kept in
 * grubenv, and /etc/kernel/cmdline for the next kernel-install) and
 * /etc/default/grub for the next grub-mkconfig.
 *
 * We edit the generated grub.cfg directly instead of running grub-mkconfig in a
 * chroot: grub-mkconfig probes the *running* host's devices (grub-probe on the
 * live image sees loop devices, not the target's virtio disks) and would write
 * wrong search hints and root= values; a direct, minimal edit of the existing
 * entries is exact, and /etc/default/grub makes the next grub-mkconfig on the
 * target agree with it.
 */
import type { InspectedOs } from '../guest/types.js';
import { kernelArgSites } from '../guest/boot-configs.js';
import { P2vError } from '../lib/errors.js';
import type { GuestFiles } from './guest-files.js';
import { writeIfChanged } from './guest-files.js';
import { getShellVar } from '../guest/shell-vars.js';
import { editArgs, lines, setShellVar } from './text.js';
import type { Change } from './types.js';

export type ArgsEdit = (args: string[]) => string[];

const GRUBENV_SIZE = 1024;

function editLines(text: string, re: RegExp, edit: ArgsEdit): string {
  const ls = lines(text);
  for (let i = 0; i < ls.length; i++) {
    const m = re.exec(ls[i]!);
    if (!m) continue;
    const args = m[2] ?? '';
    if (args.includes('$kernelopts')) continue;
    const after = editArgs(args, edit);
    if (after !== args) ls[i] = `${m[1]} ${after}`;
  }
  return ls.join('\n');
}

/** grubenv is a fixed-size block padded with '#': keep its size exactly. */
function editGrubenv(text: string, edit: ArgsEdit, path: string): string {
  const body = text.replace(/#+$/, '');
  const ls = lines(body);
  let changed = false;
  for (let i = 0; i < ls.length; i++) {
    const m = /^kernelopts=(.*)$/.exec(ls[i]!);
    if (!m) continue;
    const after = editArgs(m[1]!, edit);
    if (after !== m[1]) {
      ls[i] = `kernelopts=${after}`;
      changed = true;
    }
  }
  if (!changed) return text;
  const newBody = ls.join('\n');
  const size = Math.max(text.length, GRUBENV_SIZE);
  if (Buffer.byteLength(newBody) > size) {
    throw new P2vError('FIXUP', `the new kernel options do not fit in ${path} (${size} bytes)`, {
      hint: 'remove unneeded variables from grubenv in the source (grub2-editenv list), then retry',
    });
  }
  return newBody + '#'.repeat(size - Buffer.byteLength(newBody));
}

export interface BootArgsOptions {
  /** Variables of /etc/default/grub to edit too (none: leave the file alone). */
  defaultGrubVars?: string[];
}

/**
 * Changes that apply `edit` to every kernel command line the guest boots
 * with: the places are guest/boot-configs.ts's kernelArgSites, decided from
 * what Inspection says of the bootloader, the same list inspection read.
 */
export async function planBootArgs(
  files: GuestFiles,
  os: InspectedOs,
  edit: ArgsEdit,
  opts: BootArgsOptions = {},
): Promise<Change[]> {
  const changes: Change[] = [];
  const seen = new Set<string>();
  let usesKernelopts = false;
  let grubenvDone = false;
  const vars = opts.defaultGrubVars ?? [];
  for (const site of await kernelArgSites(files, os)) {
    if (site.kind === 'entry' && !site.bls) {
      const host = await files.hostPath(site.file);
      if (seen.has(host)) continue; // menu.lst is often a link to grub.conf
      seen.add(host);
    }
    if (site.kind === 'grubenv' && (!usesKernelopts || grubenvDone)) continue;
    if (site.kind === 'default-grub' && vars.length === 0) continue;
    const before = await files.read(site.file);
    if (before === null) continue;
    switch (site.kind) {
      case 'entry':
        if (site.bls && /^\s*options\s.*\$kernelopts/m.test(before)) usesKernelopts = true;
        changes.push(...writeIfChanged(site.file, before, editLines(before, site.re, edit)));
        break;
      case 'grubenv':
        grubenvDone = true;
        changes.push(...writeIfChanged(site.file, before, editGrubenv(before, edit, site.file)));
        break;
      case 'kernel-cmdline': {
        // kernel-install gives the next kernel's BLS entry these arguments.
        const args = before.replace(/\n$/, '');
        const after = editArgs(args, edit);
        if (after !== args) changes.push({ kind: 'write', path: site.file, before, after: after + '\n' });
        break;
      }
      case 'default-grub': {
        let after = before;
        for (const v of vars) {
          const cur = getShellVar(after, v);
          if (cur === undefined) continue;
          after = setShellVar(after, v, editArgs(cur, edit));
        }
        changes.push(...writeIfChanged(site.file, before, after));
        break;
      }
    }
  }
  return changes;
}

/** Arguments with net.ifnames=0 biosdevname=0 (left alone when already so, wherever they sit). */
export function withInterfaceNaming(args: string[]): string[] {
  const current = args.filter((a) => /^(net\.ifnames|biosdevname)=/.test(a)).sort();
  if (current.length === 2 && current[0] === 'biosdevname=0' && current[1] === 'net.ifnames=0') return args;
  return [...args.filter((a) => !/^(net\.ifnames|biosdevname)=/.test(a)), 'net.ifnames=0', 'biosdevname=0'];
}
