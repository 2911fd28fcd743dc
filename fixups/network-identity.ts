/**
 * network-identity: the instance gets a new MAC address from Ganeti, so every
 * interface name or configuration pinned to the source's MAC would leave the
 * NIC unconfigured (or renamed eth1). We remove the pins: the MAC rules of
 * udev's 70-persistent-net.rules, systemd .link files that match on a MAC,
 * NetworkManager's `mac-address=` and ifcfg's `HWADDR=`.
 *
 * Where the old udev rule generator is installed (Debian ≤ 8, Ubuntu ≤ 16.04,
 * RHEL 6) it would pin the new MAC on first boot and a later Ganeti MAC change
 * (gnt-instance modify, a re-import) would rename the NIC again; we disable it
 * with an empty /etc/udev/rules.d override of the same name, the way Debian's
 * udev README documents.
 *
 * With the pins gone, the kernel's own names (eth0, eth1 in probe order) are
 * requested with net.ifnames=0 biosdevname=0 on every kernel command line, so
 * the guest's existing configuration for eth0 still finds its NIC.
 */
import { planBootArgs, withInterfaceNaming } from './boot-args.js';
import { writeIfChanged, type GuestFiles } from './guest-files.js';
import { iniSections, lines } from './text.js';
import type { Change, Fixup, FixupContext, PlannedFixup } from './types.js';

const PERSISTENT_NET = '/etc/udev/rules.d/70-persistent-net.rules';
const GENERATOR = '75-persistent-net-generator.rules';
const GENERATOR_OVERRIDE = [
  '# Written by ganeti-p2v: this empty file overrides the udev rule that pinned',
  '# network interface names to MAC addresses (a Ganeti instance may get a new MAC).',
  '',
].join('\n');

/** Drop MAC-matching rules and the "# PCI device …" comment generated above each. */
export function unpinUdevRules(text: string): string {
  const ls = lines(text);
  const keep: string[] = [];
  for (const l of ls) {
    if (!/^\s*#/.test(l) && /ATTR\{address\}/.test(l)) {
      const prev = keep[keep.length - 1];
      if (prev !== undefined && /^#.*\bdevice\b/.test(prev)) keep.pop();
      continue;
    }
    keep.push(l);
  }
  return keep.join('\n');
}

/** Whether live (uncommented) udev rules give a NIC a kernel-style name: NAME="eth0". */
function namesKernelInterface(rules: string): boolean {
  return lines(rules).some((l) => !/^\s*#/.test(l) && /\bNAME\s*=\s*"eth\d+"/.test(l));
}

/** Whether a systemd .link file's [Match] section names a MAC address. */
export function linkMatchesMac(text: string): boolean {
  const ls = lines(text);
  return iniSections(ls).some(
    (s) => s.name === 'Match' && ls.slice(s.start + 1, s.end).some((l) => /^\s*(Permanent)?MACAddress\s*=/.test(l)),
  );
}

/** Remove `mac-address=` from the [ethernet] section of an NM keyfile. */
export function unpinKeyfile(text: string): string {
  const ls = lines(text);
  const drop = new Set<number>();
  for (const s of iniSections(ls)) {
    if (s.name !== 'ethernet' && s.name !== '802-3-ethernet') continue;
    for (let i = s.start + 1; i < s.end; i++) if (/^\s*mac-address\s*=/.test(ls[i]!)) drop.add(i);
  }
  return ls.filter((_, i) => !drop.has(i)).join('\n');
}

export function unpinIfcfg(text: string): string {
  return lines(text)
    .filter((l) => !/^\s*HWADDR=/.test(l))
    .join('\n');
}

async function planEach(
  files: GuestFiles,
  dir: string,
  accept: (name: string) => boolean,
  edit: (text: string) => string,
  summary: string[],
  what: string,
): Promise<Change[]> {
  const changes: Change[] = [];
  for (const name of await files.list(dir)) {
    if (!accept(name)) continue;
    const path = `${dir}/${name}`;
    const before = await files.read(path);
    if (before === null) continue;
    const ch = writeIfChanged(path, before, edit(before));
    if (ch.length > 0) summary.push(`${path}: ${what}`);
    changes.push(...ch);
  }
  return changes;
}

export const networkIdentity: Fixup = {
  name: 'network-identity',
  description: "remove network interface names and settings pinned to the source's MAC addresses",
  appliesTo: () => true,
  async plan(ctx: FixupContext): Promise<PlannedFixup> {
    const out: PlannedFixup = { fixup: 'network-identity', summary: [], changes: [] };
    if (!ctx.inspection.os) return out;
    const files = ctx.files;

    let pinnedKernelNames = false;
    const rules = await files.read(PERSISTENT_NET);
    if (rules !== null) {
      const unpinned = unpinUdevRules(rules);
      pinnedKernelNames = namesKernelInterface(rules) && !namesKernelInterface(unpinned);
      const ch = writeIfChanged(PERSISTENT_NET, rules, unpinned);
      if (ch.length > 0) out.summary.push(`${PERSISTENT_NET}: removed MAC-pinned interface names`);
      out.changes.push(...ch);
    }
    const override = `/etc/udev/rules.d/${GENERATOR}`;
    const hasGenerator =
      (await files.exists(`/lib/udev/rules.d/${GENERATOR}`)) ||
      (await files.exists(`/usr/lib/udev/rules.d/${GENERATOR}`));
    if (hasGenerator && !(await files.exists(override, false))) {
      out.changes.push({ kind: 'write', path: override, before: null, after: GENERATOR_OVERRIDE, mode: 0o644 });
      out.summary.push(`${override}: disabled the udev rule generator that pins names to MACs`);
    }

    for (const name of await files.list('/etc/systemd/network')) {
      if (!name.endsWith('.link')) continue;
      const path = `/etc/systemd/network/${name}`;
      const text = await files.read(path);
      if (text === null || !linkMatchesMac(text)) continue;
      if (/^\s*Name\s*=\s*eth\d+\s*$/m.test(text)) pinnedKernelNames = true;
      out.changes.push({ kind: 'remove', path, before: text });
      out.summary.push(`${path}: removed (matched a MAC address)`);
    }

    out.changes.push(
      ...(await planEach(
        files,
        '/etc/NetworkManager/system-connections',
        () => true,
        unpinKeyfile,
        out.summary,
        'removed mac-address',
      )),
      ...(await planEach(
        files,
        '/etc/sysconfig/network-scripts',
        (n) => n.startsWith('ifcfg-') && n !== 'ifcfg-lo',
        unpinIfcfg,
        out.summary,
        'removed HWADDR',
      )),
    );
    // A pin that named the NIC eth0 kept it eth0 although systemd would call it ens3 or enp0s4;
    // without the pin the guest's configuration for eth0 would find no NIC. Ask for the
    // kernel's own names (eth0, eth1 in probe order) instead. Guests already using
    // predictable names (ens192) keep them.
    if (pinnedKernelNames) {
      const boot = await planBootArgs(files, ctx.inspection.os, withInterfaceNaming, {
        defaultGrubVars: ['GRUB_CMDLINE_LINUX'],
      });
      for (const c of boot) if (c.kind === 'write') out.summary.push(`${c.path}: net.ifnames=0 biosdevname=0`);
      out.changes.push(...boot);
    }
    return out;
  },
};
