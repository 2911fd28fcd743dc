/**
 * serial-console: the instance's console is where Ganeti puts it. On kvm Ganeti
 * connects the first serial port (ttyS0, 115200 baud) to `gnt-instance
 * console`; Xen PV guests have only the hvc0 paravirtual console; Xen HVM
 * guests get an emulated ttyS0. We set the kernel's console= in every boot
 * entry (the last console= is /dev/console, so the serial one goes last and
 * tty0 stays for VNC), make grub itself talk on the serial line, and start a
 * getty there for each init system.
 */
import { P2vError } from '../lib/errors.js';
import { planBootArgs } from './boot-args.js';
import { writeIfChanged, type GuestFiles } from './guest-files.js';
import { getShellVar } from '../guest/shell-vars.js';
import { appendLines, editArgs, isComment, lines, setShellVar } from './text.js';
import type { Change, Fixup, FixupContext, HypervisorProfile, PlannedFixup } from './types.js';

export interface ConsoleSettings {
  tty: string;
  /** console= arguments, the serial one last. */
  args: string[];
  /** Whether grub's own menu should use the serial port too. */
  grubSerial: boolean;
}

export function consoleFor(hv: HypervisorProfile): ConsoleSettings {
  if (hv === 'xen-pvm') return { tty: 'hvc0', args: ['console=hvc0'], grubSerial: false };
  return { tty: 'ttyS0', args: ['console=tty0', 'console=ttyS0,115200n8'], grubSerial: true };
}

/**
 * Arguments with exactly `consoles` as their console= list. Left as they are
 * when that already holds, wherever the arguments sit (other fixups append
 * arguments too, and neither may undo the other).
 */
export function withConsoles(args: string[], consoles: string[]): string[] {
  const current = args.filter((a) => a.startsWith('console='));
  if (current.length === consoles.length && current.every((a, i) => a === consoles[i])) return args;
  return [...args.filter((a) => !a.startsWith('console=')), ...consoles];
}

const GRUB_SERIAL_COMMAND = 'serial --unit=0 --speed=115200';
const SERIAL_GETTY_UNITS = [
  '/lib/systemd/system/serial-getty@.service',
  '/usr/lib/systemd/system/serial-getty@.service',
];

const HEADER_END = '### END /etc/grub.d/00_header ###';

/**
 * Make the generated grub.cfg use the serial port too, as grub-mkconfig
 * would with our /etc/default/grub: the terminal commands go last in the
 * 00_header block, after any `terminal_output gfxterm` there.
 */
export function grubCfgSerial(text: string): string {
  if (/^\s*serial\s/m.test(text) || !text.includes(HEADER_END)) return text;
  return text.replace(
    HEADER_END,
    `${GRUB_SERIAL_COMMAND}\nterminal_input console serial\nterminal_output console serial\n${HEADER_END}`,
  );
}

async function planDefaultGrub(files: GuestFiles, c: ConsoleSettings): Promise<Change[]> {
  const before = await files.read('/etc/default/grub');
  if (before === null) return [];
  let after = before;
  const cmdline = getShellVar(after, 'GRUB_CMDLINE_LINUX') ?? '';
  after = setShellVar(
    after,
    'GRUB_CMDLINE_LINUX',
    editArgs(cmdline, (a) => withConsoles(a, c.args)),
  );
  const extra = getShellVar(after, 'GRUB_CMDLINE_LINUX_DEFAULT');
  if (extra !== undefined) {
    after = setShellVar(
      after,
      'GRUB_CMDLINE_LINUX_DEFAULT',
      editArgs(extra, (a) => withConsoles(a, [])),
    );
  }
  if (c.grubSerial) {
    after = setShellVar(after, 'GRUB_TERMINAL', 'console serial');
    after = setShellVar(after, 'GRUB_SERIAL_COMMAND', GRUB_SERIAL_COMMAND);
  }
  return writeIfChanged('/etc/default/grub', before, after);
}

/**
 * Snippets in /etc/default/grub.d are read after /etc/default/grub (cloud
 * images put console= and GRUB_TERMINAL there): their console= arguments go,
 * and a GRUB_TERMINAL they set follows ours.
 */
async function planGrubSnippets(files: GuestFiles, c: ConsoleSettings): Promise<Change[]> {
  const changes: Change[] = [];
  for (const name of await files.list('/etc/default/grub.d')) {
    if (!name.endsWith('.cfg')) continue;
    const path = `/etc/default/grub.d/${name}`;
    const before = await files.read(path);
    if (before === null) continue;
    let after = before;
    for (const v of ['GRUB_CMDLINE_LINUX', 'GRUB_CMDLINE_LINUX_DEFAULT']) {
      const cur = getShellVar(after, v);
      if (cur !== undefined)
        after = setShellVar(
          after,
          v,
          editArgs(cur, (a) => withConsoles(a, [])),
        );
    }
    if (c.grubSerial && getShellVar(after, 'GRUB_TERMINAL') !== undefined) {
      after = setShellVar(after, 'GRUB_TERMINAL', 'console serial');
    }
    changes.push(...writeIfChanged(path, before, after));
  }
  return changes;
}

async function planSystemdGetty(files: GuestFiles, tty: string): Promise<{ changes: Change[]; summary: string[] }> {
  const link = `/etc/systemd/system/getty.target.wants/serial-getty@${tty}.service`;
  if (await files.exists(link, false)) return { changes: [], summary: [] };
  for (const unit of SERIAL_GETTY_UNITS) {
    if (await files.exists(unit)) {
      return {
        changes: [{ kind: 'symlink', path: link, target: unit }],
        summary: [`enabled serial-getty@${tty}.service`],
      };
    }
  }
  throw new P2vError('FIXUP', `systemd guest has no serial-getty@.service to start a login on ${tty}`, {
    hint: 'install systemd completely in the source, or skip this fixup and log in through the network',
  });
}

function inittabLine(text: string, tty: string): string[] | null {
  const ls = lines(text);
  const word = new RegExp(`(^|[\\s/])${tty}(\\s|$)`);
  const used = new Set<string>();
  for (const l of ls) {
    if (isComment(l)) continue;
    const f = l.split(':');
    if (f.length >= 4 && word.test(f.slice(3).join(':'))) return null;
    used.add(f[0]!);
  }
  let n = 0;
  while (used.has(`T${n}`)) n++;
  return [`T${n}:23:respawn:/sbin/getty -L ${tty} 115200 vt100`];
}

function upstartJob(tty: string): string {
  return [
    `# ${tty} - getty`,
    '#',
    `# Written by ganeti-p2v: a login prompt on the Ganeti instance's console.`,
    '',
    'start on stopped rc RUNLEVEL=[2345]',
    'stop on runlevel [!2345]',
    '',
    'respawn',
    `exec /sbin/getty -L 115200 ${tty} vt102`,
    '',
  ].join('\n');
}

export const serialConsole: Fixup = {
  name: 'serial-console',
  description: "put the kernel console, grub and a login prompt on the hypervisor's serial console",
  appliesTo: () => true,
  async plan(ctx: FixupContext): Promise<PlannedFixup> {
    const os = ctx.inspection.os;
    const out: PlannedFixup = { fixup: 'serial-console', summary: [], changes: [] };
    if (!os) return out;
    const files = ctx.files;
    const c = consoleFor(ctx.options.hypervisor);

    const boot = await planBootArgs(files, os, (a) => withConsoles(a, c.args));
    if (c.grubSerial && os.bootloader === 'grub2') {
      for (const ch of boot)
        if (ch.kind === 'write' && os.grubConfigs.includes(ch.path)) ch.after = grubCfgSerial(ch.after);
      for (const cfg of os.grubConfigs) {
        if (boot.some((ch) => ch.kind === 'write' && ch.path === cfg)) continue;
        const before = await files.read(cfg);
        if (before !== null) boot.push(...writeIfChanged(cfg, before, grubCfgSerial(before)));
      }
    }
    const grubDefault =
      os.bootloader === 'grub2' ? [...(await planDefaultGrub(files, c)), ...(await planGrubSnippets(files, c))] : [];
    for (const ch of [...boot, ...grubDefault]) {
      out.changes.push(ch);
      out.summary.push(`${ch.kind === 'write' ? ch.path : ''}: console ${c.args.join(' ')}`);
    }

    if (os.initSystem === 'systemd') {
      const g = await planSystemdGetty(files, c.tty);
      out.changes.push(...g.changes);
      out.summary.push(...g.summary);
    } else if (os.initSystem === 'sysvinit') {
      const before = await files.read('/etc/inittab');
      if (before !== null) {
        const add = inittabLine(before, c.tty);
        if (add) {
          out.changes.push({ kind: 'write', path: '/etc/inittab', before, after: appendLines(before, add) });
          out.summary.push(`/etc/inittab: getty on ${c.tty}`);
        }
      }
    } else if (os.initSystem === 'upstart') {
      const job = `/etc/init/${c.tty}.conf`;
      if (!(await files.exists(job))) {
        out.changes.push({ kind: 'write', path: job, before: null, after: upstartJob(c.tty), mode: 0o644 });
        out.summary.push(`${job}: getty on ${c.tty}`);
      }
    }

    const securetty = await files.read('/etc/securetty');
    if (securetty !== null && !lines(securetty).some((l) => l.trim() === c.tty)) {
      out.changes.push({
        kind: 'write',
        path: '/etc/securetty',
        before: securetty,
        after: appendLines(securetty, [c.tty]),
      });
      out.summary.push(`/etc/securetty: root may log in on ${c.tty}`);
    }
    return out;
  },
};
