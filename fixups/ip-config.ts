/**
 * ip-config (--ip/--gateway/--dns or --dhcp): configure the instance's primary
 * interface for the network configuration system the guest uses
 * (Inspection.os.networkConfig[0]).
 *
 * The interface is called eth0 on the target, with net.ifnames=0
 * biosdevname=0 added to every kernel command line. The predictable name of a
 * virtio NIC depends on the PCI slot Ganeti gives it (Ganeti's kvm hotplug
 * support assigns slots dynamically, and Xen netfront devices get enX0 or
 * eth0 depending on the systemd version), so it cannot be known at export
 * time; the kernel name eth0 is the first NIC in probe order, which is
 * Ganeti's nic 0 on both hypervisors, and it works the same under systemd,
 * sysvinit and upstart. A .link file would need systemd-udevd.
 */
import { isIP } from 'node:net';
import { createHash } from 'node:crypto';
import { P2vError } from '../lib/errors.js';
import { planBootArgs, withInterfaceNaming } from './boot-args.js';
import { writeIfChanged, type GuestFiles } from './guest-files.js';
import { appendLines, isComment, lines } from './text.js';
import type { Change, Fixup, FixupContext, FixupOptions, PlannedFixup } from './types.js';

export const PRIMARY_INTERFACE = 'eth0';
const HEADER = '# Written by ganeti-p2v: the primary interface of the Ganeti instance.';

export interface IpSettings {
  dhcp: boolean;
  family: 4 | 6;
  address?: string;
  prefix?: number;
  gateway?: string;
  dns: string[];
}

/** Check and normalise the command-line network options. */
export function ipSettings(o: FixupOptions): IpSettings {
  const bad = (msg: string, hint: string) => new P2vError('USAGE', msg, { hint });
  const dns = o.dns ?? [];
  for (const d of dns) if (!isIP(d)) throw bad(`--dns ${d} is not an IP address`, 'give one address per --dns');
  if (o.gateway !== undefined && !isIP(o.gateway)) {
    throw bad(`--gateway ${o.gateway} is not an IP address`, 'give the router address, e.g. --gateway 192.0.2.1');
  }
  if (o.dhcp) {
    if (o.ip !== undefined) throw bad('--ip and --dhcp exclude each other', 'give either a static --ip or --dhcp');
    return { dhcp: true, family: 4, dns, ...(o.gateway ? { gateway: o.gateway } : {}) };
  }
  if (o.ip === undefined) {
    throw bad('--gateway/--dns need --ip or --dhcp', 'add --ip ADDRESS/PREFIX (or --dhcp)');
  }
  const m = /^([^/]+)\/(\d{1,3})$/.exec(o.ip);
  const family = m ? isIP(m[1]!) : 0;
  if (!m || family === 0 || Number(m[2]) > (family === 4 ? 32 : 128)) {
    throw bad(
      `--ip ${o.ip} is not ADDRESS/PREFIX`,
      'write the address with its prefix length, e.g. --ip 192.0.2.10/24',
    );
  }
  return {
    dhcp: false,
    family: family as 4 | 6,
    address: m[1]!,
    prefix: Number(m[2]),
    dns,
    ...(o.gateway ? { gateway: o.gateway } : {}),
  };
}

const cidr = (s: IpSettings) => `${s.address}/${s.prefix}`;

// ---- ifupdown -------------------------------------------------------------

const IFUPDOWN_KEYWORD = /^\s*(iface|mapping|auto|allow-\S+|source|source-directory|rename|no-auto-down|no-scripts)\b/;

export function ifupdownStanza(s: IpSettings, dev = PRIMARY_INTERFACE): string[] {
  const fam = s.family === 6 ? 'inet6' : 'inet';
  if (s.dhcp) return [`iface ${dev} ${fam} dhcp`];
  const out = [`iface ${dev} ${fam} static`, `\taddress ${cidr(s)}`];
  if (s.gateway) out.push(`\tgateway ${s.gateway}`);
  if (s.dns.length > 0) out.push(`\tdns-nameservers ${s.dns.join(' ')}`);
  return out;
}

/**
 * Replace the first non-loopback `iface X inet` stanza with ours (named eth0),
 * renaming X in auto/allow- lines and its other-family stanza; null when the
 * file has no such stanza.
 */
export function editInterfaces(text: string, s: IpSettings): string | null {
  const ls = lines(text);
  const fam = s.family === 6 ? 'inet6' : 'inet';
  const start = ls.findIndex((l) => {
    const m = /^\s*iface\s+(\S+)\s+(\S+)/.exec(l);
    return m !== null && m[1] !== 'lo' && m[2] === fam;
  });
  if (start < 0) return null;
  const old = /^\s*iface\s+(\S+)/.exec(ls[start]!)![1]!;
  let end = start + 1;
  while (end < ls.length && !IFUPDOWN_KEYWORD.test(ls[end]!)) end++;
  while (end > start + 1 && isComment(ls[end - 1]!)) end--;
  ls.splice(start, end - start, ...ifupdownStanza(s));
  const rename = (l: string) =>
    l.replace(
      new RegExp(`^(\\s*(?:auto|allow-\\S+)\\s.*?)(?<=\\s)${escapeRe(old)}(?=\\s|$)`),
      `$1${PRIMARY_INTERFACE}`,
    );
  let hasAuto = false;
  for (let i = 0; i < ls.length; i++) {
    const l = ls[i]!;
    if (/^\s*(auto|allow-\S+)\s/.test(l)) {
      ls[i] = rename(l);
      if (new RegExp(`\\s${PRIMARY_INTERFACE}(\\s|$)`).test(ls[i]!)) hasAuto = true;
    } else if (new RegExp(`^\\s*iface\\s+${escapeRe(old)}\\s`).test(l)) {
      ls[i] = l.replace(old, PRIMARY_INTERFACE);
    }
  }
  if (!hasAuto) {
    const at = ls.findIndex((l) => new RegExp(`^\\s*iface\\s+${PRIMARY_INTERFACE}\\s+${fam}\\s`).test(l));
    ls.splice(at, 0, `auto ${PRIMARY_INTERFACE}`);
  }
  return ls.join('\n');
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Keep search/options of a static resolv.conf; replace its nameservers. */
export function resolvConf(text: string | null, dns: string[]): string {
  const kept = text === null ? [] : lines(text).filter((l) => !/^\s*nameserver\s/.test(l) && l !== '');
  return [...kept, ...dns.map((d) => `nameserver ${d}`)].join('\n') + '\n';
}

async function planIfupdown(files: GuestFiles, s: IpSettings): Promise<Change[]> {
  const main = '/etc/network/interfaces';
  const candidates = [
    main,
    ...(await files.list('/etc/network/interfaces.d')).map((n) => `/etc/network/interfaces.d/${n}`),
  ];
  const changes: Change[] = [];
  let done = false;
  for (const path of candidates) {
    const before = await files.read(path);
    if (before === null) continue;
    const after = editInterfaces(before, s);
    if (after === null) continue;
    changes.push(...writeIfChanged(path, before, after));
    done = true;
    break;
  }
  if (!done) {
    const before = await files.read(main);
    changes.push(
      ...writeIfChanged(
        main,
        before,
        appendLines(before, [...(before ? [''] : []), `auto ${PRIMARY_INTERFACE}`, ...ifupdownStanza(s)]),
      ),
    );
  }
  if (!s.dhcp && s.dns.length > 0 && !(await files.isSymlink('/etc/resolv.conf'))) {
    const before = await files.read('/etc/resolv.conf');
    changes.push(...writeIfChanged('/etc/resolv.conf', before, resolvConf(before, s.dns), 0o644));
  }
  return changes;
}

// ---- netplan --------------------------------------------------------------

export const NETPLAN_FILE = '/etc/netplan/90-p2v.yaml';

export function netplanYaml(s: IpSettings): string {
  const out = [HEADER, 'network:', '  version: 2', '  ethernets:', `    ${PRIMARY_INTERFACE}:`];
  if (s.dhcp) {
    out.push('      dhcp4: true');
  } else {
    out.push(`      dhcp${s.family}: false`, `      addresses: [${cidr(s)}]`);
    if (s.gateway)
      out.push(
        '      routes:',
        `        - to: ${s.family === 4 ? '0.0.0.0/0' : '::/0'}`,
        `          via: ${s.gateway}`,
      );
    if (s.dns.length > 0) out.push('      nameservers:', `        addresses: [${s.dns.join(', ')}]`);
  }
  return out.join('\n') + '\n';
}

async function planNetplan(files: GuestFiles, s: IpSettings, summary: string[]): Promise<Change[]> {
  const changes: Change[] = [];
  for (const name of await files.list('/etc/netplan')) {
    const path = `/etc/netplan/${name}`;
    if (!name.endsWith('.yaml') || path === NETPLAN_FILE) continue;
    const text = await files.read(path);
    if (text === null || !/^\s*ethernets\s*:/m.test(text)) continue;
    // netplan merges files: an older definition of the interface would add its
    // addresses to ours. It only reads *.yaml, so the renamed file is inert.
    changes.push({ kind: 'remove', path, before: text });
    changes.push({ kind: 'write', path: `${path}.p2v-disabled`, before: null, after: text, mode: 0o600 });
    summary.push(`${path}: renamed to ${name}.p2v-disabled (it configured ethernet interfaces)`);
  }
  changes.push(...writeIfChanged(NETPLAN_FILE, await files.read(NETPLAN_FILE), netplanYaml(s), 0o600));
  return changes;
}

// ---- NetworkManager ------------------------------------------------------

export const NM_FILE = `/etc/NetworkManager/system-connections/p2v-${PRIMARY_INTERFACE}.nmconnection`;

/** A stable UUID so that planning twice writes the same file. */
function nmUuid(): string {
  const h = createHash('sha256').update(`ganeti-p2v ${PRIMARY_INTERFACE}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function nmKeyfile(s: IpSettings): string {
  const ip = (fam: 4 | 6) => {
    if (s.dhcp) return fam === 4 ? ['method=auto'] : ['method=auto'];
    if (s.family !== fam) return [fam === 4 ? 'method=disabled' : 'method=auto'];
    const out = ['method=manual', `address1=${cidr(s)}${s.gateway ? `,${s.gateway}` : ''}`];
    if (s.dns.length > 0) out.push(`dns=${s.dns.join(';')};`);
    return out;
  };
  return [
    HEADER,
    '[connection]',
    `id=p2v-${PRIMARY_INTERFACE}`,
    `uuid=${nmUuid()}`,
    'type=ethernet',
    `interface-name=${PRIMARY_INTERFACE}`,
    // Wins over any older profile that could also activate on this device.
    'autoconnect-priority=100',
    '',
    '[ethernet]',
    '',
    '[ipv4]',
    ...ip(4),
    '',
    '[ipv6]',
    ...ip(6),
    '',
  ].join('\n');
}

// ---- RHEL ifcfg ----------------------------------------------------------

export const IFCFG_FILE = `/etc/sysconfig/network-scripts/ifcfg-${PRIMARY_INTERFACE}`;

export function ifcfg(s: IpSettings): string {
  const out = [HEADER, `DEVICE=${PRIMARY_INTERFACE}`, `NAME=${PRIMARY_INTERFACE}`, 'TYPE=Ethernet', 'ONBOOT=yes'];
  if (s.dhcp) out.push('BOOTPROTO=dhcp');
  else if (s.family === 4) {
    out.push('BOOTPROTO=none', `IPADDR=${s.address}`, `PREFIX=${s.prefix}`);
    if (s.gateway) out.push(`GATEWAY=${s.gateway}`);
  } else {
    out.push('BOOTPROTO=none', 'IPV6INIT=yes', `IPV6ADDR=${cidr(s)}`);
    if (s.gateway) out.push(`IPV6_DEFAULTGW=${s.gateway}`);
  }
  s.dns.forEach((d, i) => out.push(`DNS${i + 1}=${d}`));
  return out.join('\n') + '\n';
}

// ---- systemd-networkd ----------------------------------------------------

/** Sorts before distribution files such as 50-dhcp.network that match by wildcard. */
export const NETWORKD_FILE = `/etc/systemd/network/05-p2v-${PRIMARY_INTERFACE}.network`;

export function networkdUnit(s: IpSettings): string {
  const out = [HEADER, '[Match]', `Name=${PRIMARY_INTERFACE}`, '', '[Network]'];
  if (s.dhcp) out.push('DHCP=yes');
  else {
    out.push(`Address=${cidr(s)}`);
    if (s.gateway) out.push(`Gateway=${s.gateway}`);
  }
  for (const d of s.dns) out.push(`DNS=${d}`);
  return out.join('\n') + '\n';
}

async function planFile(files: GuestFiles, path: string, text: string, mode: number): Promise<Change[]> {
  return writeIfChanged(path, await files.read(path), text, mode);
}

export const ipConfig: Fixup = {
  name: 'ip-config',
  description: 'configure the primary interface (eth0) with --ip/--gateway/--dns or --dhcp',
  appliesTo: (o) => o.ip !== undefined || o.dhcp === true || o.gateway !== undefined || (o.dns?.length ?? 0) > 0,
  async plan(ctx: FixupContext): Promise<PlannedFixup> {
    const out: PlannedFixup = { fixup: 'ip-config', summary: [], changes: [] };
    const os = ctx.inspection.os;
    if (!os) return out;
    const s = ipSettings(ctx.options);
    const files = ctx.files;
    const system = os.networkConfig[0];
    const what = s.dhcp ? 'DHCP' : `${cidr(s)}${s.gateway ? ` via ${s.gateway}` : ''}`;
    let changes: Change[];
    switch (system) {
      case 'ifupdown':
        changes = await planIfupdown(files, s);
        break;
      case 'netplan':
        changes = await planNetplan(files, s, out.summary);
        break;
      case 'networkmanager':
        changes = await planFile(files, NM_FILE, nmKeyfile(s), 0o600);
        break;
      case 'ifcfg':
        changes = await planFile(files, IFCFG_FILE, ifcfg(s), 0o644);
        break;
      case 'systemd-networkd':
        changes = await planFile(files, NETWORKD_FILE, networkdUnit(s), 0o644);
        break;
      default:
        throw new P2vError(
          'FIXUP',
          'cannot tell how the guest configures its network, so --ip/--dhcp cannot be applied',
          {
            hint: 'configure the network after the first boot through the Ganeti console, or use a site hook (--hooks)',
          },
        );
    }
    for (const c of changes)
      if (c.kind === 'write' && !c.path.endsWith('.p2v-disabled'))
        out.summary.push(`${c.path}: ${PRIMARY_INTERFACE} ${what}`);
    const boot = await planBootArgs(files, os, withInterfaceNaming, { defaultGrubVars: ['GRUB_CMDLINE_LINUX'] });
    for (const c of boot) if (c.kind === 'write') out.summary.push(`${c.path}: net.ifnames=0 biosdevname=0`);
    out.changes = [...changes, ...boot];
    return out;
  },
};
