/**
 * hostname (--hostname): give the instance its new name where the distribution
 * keeps it: /etc/hostname, the old name's entries in /etc/hosts (at the new
 * address with --ip/--dhcp; Debian's 127.0.1.1 line is added if no line names
 * the host), /etc/mailname when it
 * held the old name, and HOSTNAME= in /etc/sysconfig/network (RHEL 6 and
 * older read it; later ones only when it is there). Other lines stay as they are.
 */
import { P2vError } from '../lib/errors.js';
import { writeIfChanged } from './guest-files.js';
import { getShellVar } from '../guest/shell-vars.js';
import { isComment, lines, setShellVar } from './text.js';
import type { Change, Fixup, FixupContext, PlannedFixup } from './types.js';

const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Refuse a name that is not a DNS host name (also used by p2v-export to check --hostname and --name up front). */
export function checkHostname(name: string, option = '--hostname'): void {
  if (!HOSTNAME_RE.test(name)) {
    throw new P2vError('USAGE', `${option} ${JSON.stringify(name)} is not a valid host name`, {
      hint: 'use letters, digits and hyphens, with dots between labels (e.g. web1 or web1.example.org)',
    });
  }
}

const short = (n: string) => n.split('.')[0]!;

/**
 * The new spelling of one /etc/hosts name: the old short name becomes the new
 * short name, any FQDN of the old host (old.<domain>) the new FQDN (or the new
 * short name in the old domain when only a short name was given).
 */
export function renameHost(token: string, oldName: string | undefined, newName: string): string {
  if (!oldName) return token;
  const oldShort = short(oldName);
  if (token === oldShort) return short(newName);
  if (token.startsWith(oldShort + '.')) return newName.includes('.') ? newName : newName + token.slice(oldShort.length);
  return token;
}

/**
 * The machine's own address after the move, for /etc/hosts: the --ip address,
 * Debian's 127.0.1.1 with --dhcp (no permanent address), or undefined when
 * the network configuration is not changed (the old address stays true).
 */
export type HostAddress = { kind: 'static'; address: string } | { kind: 'dhcp' } | undefined;

/** Loopback lines that name localhost: a host name there stays true wherever the host moves. */
const LOCALHOST_ADDRESSES = new Set(['127.0.0.1', '::1']);

/**
 * Rewrite /etc/hosts. Old names become the new ones. A line that names the
 * host at one of its own addresses (not 127.0.0.1/::1) describes this
 * machine: with a new address (--ip) it moves to that address, with --dhcp to
 * 127.0.1.1; without either it stays where it is, still true. When no line
 * names the host, one is added: `ADDRESS name` with --ip, else 127.0.1.1 (as
 * Debian's installer writes). Other hosts' lines, comments and spacing stay.
 */
export function renameInHosts(
  text: string,
  oldName: string | undefined,
  newName: string,
  newAddress: HostAddress = undefined,
): string {
  const ls = lines(text);
  const moveTo = newAddress?.kind === 'static' ? newAddress.address : newAddress?.kind === 'dhcp' ? '127.0.1.1' : null;
  let named = false;
  const hostLines = new Set<string>();
  for (let i = 0; i < ls.length; i++) {
    const line = ls[i]!;
    if (isComment(line)) continue;
    const m = /^(\s*)(\S+)(.*?)(\s*#.*)?$/.exec(line)!;
    const address = m[2]!;
    const tokens = m[3]!.split(/(\s+)/);
    let changed = false;
    let namesHost = false;
    const seen = new Set<string>();
    const outTokens: string[] = [];
    for (const t of tokens) {
      if (t === '' || /^\s+$/.test(t)) {
        outTokens.push(t);
        continue;
      }
      const to = renameHost(t, oldName, newName);
      if (to !== t) changed = true;
      if (seen.has(to)) {
        changed = true;
        if (/^\s+$/.test(outTokens[outTokens.length - 1] ?? '')) outTokens.pop();
        continue;
      }
      seen.add(to);
      if (to === newName || to === short(newName)) namesHost = true;
      outTokens.push(to);
    }
    let newAddr = address;
    if (namesHost && moveTo !== null && !LOCALHOST_ADDRESSES.has(address) && address !== moveTo) {
      newAddr = moveTo;
      changed = true;
    }
    const names = outTokens.join('');
    // Two lines of the old host (its address and 127.0.1.1) that now say the same thing: keep the first.
    const key = `${newAddr} ${names.trim().split(/\s+/).join(' ')}`;
    if (namesHost && hostLines.has(key)) {
      ls.splice(i--, 1);
      continue;
    }
    if (namesHost) hostLines.add(key);
    named ||= namesHost;
    if (changed) ls[i] = m[1]! + newAddr + names + (m[4] ?? '');
  }
  if (!named) {
    const entry = `${moveTo ?? '127.0.1.1'}\t${newName === short(newName) ? newName : `${newName} ${short(newName)}`}`;
    const at = ls.findIndex((l) => /^\s*127\.0\.0\.1\s/.test(l));
    const i127 = ls.findIndex((l) => /^\s*127\.0\.1\.1\s/.test(l));
    if (i127 >= 0) ls[i127] = entry;
    else if (at >= 0) ls.splice(at + 1, 0, entry);
    else ls.unshift(entry);
  }
  return ls.join('\n');
}

export const hostname: Fixup = {
  name: 'hostname',
  description: 'set the new host name (--hostname) and address (--ip/--dhcp) in /etc/hostname, /etc/hosts and friends',
  // --ip/--dhcp alone still move the host's own line in /etc/hosts to the new address.
  appliesTo: (o) => o.hostname !== undefined || o.ip !== undefined || o.dhcp === true,
  async plan(ctx: FixupContext): Promise<PlannedFixup> {
    const out: PlannedFixup = { fixup: 'hostname', summary: [], changes: [] };
    const given = ctx.options.hostname;
    if (!ctx.inspection.os) return out;
    if (given !== undefined) checkHostname(given);
    const files = ctx.files;
    const etcHostname = await files.read('/etc/hostname');
    const sysconfig = await files.read('/etc/sysconfig/network');
    const oldName =
      etcHostname?.trim() || (sysconfig && getShellVar(sysconfig, 'HOSTNAME')) || ctx.inspection.os.hostname;
    const name = given ?? oldName;
    if (!name) return out;
    const changes: Change[] = [];
    if (given !== undefined) changes.push(...writeIfChanged('/etc/hostname', etcHostname, name + '\n', 0o644));
    const hosts = await files.read('/etc/hosts');
    const address: HostAddress = ctx.options.ip
      ? { kind: 'static', address: ctx.options.ip.split('/')[0]! }
      : ctx.options.dhcp
        ? { kind: 'dhcp' }
        : undefined;
    if (hosts !== null)
      changes.push(...writeIfChanged('/etc/hosts', hosts, renameInHosts(hosts, oldName, name, address)));
    if (given !== undefined) {
      const mailname = await files.read('/etc/mailname');
      const newMailname = mailname === null ? null : renameHost(mailname.trim(), oldName, name);
      if (mailname !== null && newMailname !== mailname.trim()) {
        changes.push(...writeIfChanged('/etc/mailname', mailname, newMailname + '\n'));
      }
      if (sysconfig !== null && (getShellVar(sysconfig, 'HOSTNAME') !== undefined || etcHostname === null)) {
        changes.push(...writeIfChanged('/etc/sysconfig/network', sysconfig, setShellVar(sysconfig, 'HOSTNAME', name)));
      }
    }
    const at = address?.kind === 'static' ? ` at ${address.address}` : address?.kind === 'dhcp' ? ' at 127.0.1.1' : '';
    out.changes = changes;
    out.summary = changes.map(
      (c) => `${'path' in c ? c.path : ''}: host name ${name}${'path' in c && c.path === '/etc/hosts' ? at : ''}`,
    );
    return out;
  },
};
