/**
 * hostname (--hostname): give the instance its new name where the distribution
 * keeps it: /etc/hostname, the old name's entries in /etc/hosts (Debian's
 * 127.0.1.1 line is added if no line names the host), /etc/mailname when it
 * held the old name, and HOSTNAME= in /etc/sysconfig/network (RHEL 6 and
 * older read it; later ones only when it is there). Other lines stay as they are.
 */
import { P2vError } from '../lib/errors.js';
import { guestFiles, writeIfChanged } from './guest-files.js';
import { getShellVar, isComment, lines, setShellVar } from './text.js';
import type { Change, Fixup, FixupContext, PlannedFixup } from './types.js';

const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

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

/** Rewrite /etc/hosts: old names become the new ones; add 127.0.1.1 when no line names the host. */
export function renameInHosts(text: string, oldName: string | undefined, newName: string): string {
  const ls = lines(text);
  let named = false;
  for (let i = 0; i < ls.length; i++) {
    const line = ls[i]!;
    if (isComment(line)) continue;
    const m = /^(\s*\S+)(.*?)(\s*#.*)?$/.exec(line)!;
    const names = m[2]!;
    const tokens = names.split(/(\s+)/);
    let changed = false;
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
      if (to === newName || to === short(newName)) named = true;
      outTokens.push(to);
    }
    if (changed) ls[i] = m[1]! + outTokens.join('') + (m[3] ?? '');
  }
  if (!named) {
    const entry = `127.0.1.1\t${newName === short(newName) ? newName : `${newName} ${short(newName)}`}`;
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
  description: 'set the new host name (--hostname) in /etc/hostname, /etc/hosts and friends',
  appliesTo: (o) => o.hostname !== undefined,
  async plan(ctx: FixupContext): Promise<PlannedFixup> {
    const out: PlannedFixup = { fixup: 'hostname', summary: [], changes: [] };
    const name = ctx.options.hostname;
    if (!ctx.inspection.os || name === undefined) return out;
    if (!HOSTNAME_RE.test(name)) {
      throw new P2vError('USAGE', `--hostname ${JSON.stringify(name)} is not a valid host name`, {
        hint: 'use letters, digits and hyphens, with dots between labels (e.g. web1 or web1.example.org)',
      });
    }
    const files = guestFiles(ctx);
    const etcHostname = await files.read('/etc/hostname');
    const sysconfig = await files.read('/etc/sysconfig/network');
    const oldName =
      etcHostname?.trim() || (sysconfig && getShellVar(sysconfig, 'HOSTNAME')) || ctx.inspection.os.hostname;
    const changes: Change[] = [];
    changes.push(...writeIfChanged('/etc/hostname', etcHostname, name + '\n', 0o644));
    const hosts = await files.read('/etc/hosts');
    if (hosts !== null) changes.push(...writeIfChanged('/etc/hosts', hosts, renameInHosts(hosts, oldName, name)));
    const mailname = await files.read('/etc/mailname');
    const newMailname = mailname === null ? null : renameHost(mailname.trim(), oldName, name);
    if (mailname !== null && newMailname !== mailname.trim()) {
      changes.push(...writeIfChanged('/etc/mailname', mailname, newMailname + '\n'));
    }
    if (sysconfig !== null && (getShellVar(sysconfig, 'HOSTNAME') !== undefined || etcHostname === null)) {
      changes.push(...writeIfChanged('/etc/sysconfig/network', sysconfig, setShellVar(sysconfig, 'HOSTNAME', name)));
    }
    out.changes = changes;
    out.summary = changes.map((c) => `${'path' in c ? c.path : ''}: host name ${name}`);
    return out;
  },
};
