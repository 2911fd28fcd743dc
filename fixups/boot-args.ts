/**
 * Edits the kernel command lines of every boot entry the guest has (which
 * files and lines: guest/boot-configs.ts, shared with inspection): the `linux`
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
import type { InspectedOs } from '../exporter/types.js';
import {
  BLS_DIR,
  BLS_OPTIONS,
  bootEntryConfigs,
  DEFAULT_GRUB,
  GRUBENV,
  KERNEL_CMDLINE,
} from '../guest/boot-configs.js';
import { P2vError } from '../lib/errors.js';
import type { GuestFiles } from './guest-files.js';
import { writeIfChanged } from './guest-files.js';
import { editArgs, getShellVar, lines, setShellVar } from './text.js';
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

/** Changes that apply `edit` to every kernel command line the guest boots with. */
export async function planBootArgs(
  files: GuestFiles,
  os: InspectedOs,
  edit: ArgsEdit,
  opts: BootArgsOptions = {},
): Promise<Change[]> {
  const changes: Change[] = [];
  const configs = bootEntryConfigs(os);
  const seen = new Set<string>();
  for (const [cfg, re] of configs) {
    const host = await files.hostPath(cfg);
    if (seen.has(host)) continue; // menu.lst is often a link to grub.conf
    seen.add(host);
    const before = await files.read(cfg);
    if (before === null) continue;
    changes.push(...writeIfChanged(cfg, before, editLines(before, re, edit)));
  }
  if (os.blsEntries) {
    let usesKernelopts = false;
    for (const name of await files.list(BLS_DIR)) {
      if (!name.endsWith('.conf')) continue;
      const path = `${BLS_DIR}/${name}`;
      const before = await files.read(path);
      if (before === null) continue;
      if (/^\s*options\s.*\$kernelopts/m.test(before)) usesKernelopts = true;
      changes.push(...writeIfChanged(path, before, editLines(before, BLS_OPTIONS, edit)));
    }
    if (usesKernelopts) {
      for (const env of GRUBENV) {
        const before = await files.read(env);
        if (before === null) continue;
        changes.push(...writeIfChanged(env, before, editGrubenv(before, edit, env)));
        break;
      }
    }
  }
  if (os.blsEntries) {
    // kernel-install gives the next kernel's BLS entry these arguments.
    const before = await files.read(KERNEL_CMDLINE);
    if (before !== null) {
      const args = before.replace(/\n$/, '');
      const after = editArgs(args, edit);
      if (after !== args) changes.push({ kind: 'write', path: KERNEL_CMDLINE, before, after: after + '\n' });
    }
  }
  const vars = opts.defaultGrubVars ?? [];
  if (vars.length > 0 && os.bootloader === 'grub2') {
    const before = await files.read(DEFAULT_GRUB);
    if (before !== null) {
      let after = before;
      for (const v of vars) {
        const cur = getShellVar(after, v);
        if (cur === undefined) continue;
        after = setShellVar(after, v, editArgs(cur, edit));
      }
      changes.push(...writeIfChanged(DEFAULT_GRUB, before, after));
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
