/**
 * Host key verification for the --ssh and --direct transports: the stager's
 * key must match a pinned fingerprint (--host-key SHA256:…) or an entry in
 * known_hosts. An unknown or changed key is refused: we never trust on first
 * use, because the stream carries a whole machine.
 *
 * known_hosts as OpenSSH reads it (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"):
 * - host fields: comma-separated patterns with * and ? and !negation, matched
 *   case-insensitively; `[host]:port` for ports other than 22; hashed names
 *   `|1|base64(salt)|base64(HMAC-SHA1(salt, name))` of the same spelling;
 * - `@revoked` wins wherever it stands: a revoked key is refused for every
 *   host, before any plain line is looked at, so the order of lines and
 *   files never matters;
 * - `@cert-authority`: the key on the line signs host certificates. ssh2
 *   offers no host certificate verification, so a host that known_hosts only
 *   vouches for through a CA is refused with its own message (pin the key
 *   with --host-key instead); a plain line for the key still accepts it.
 *
 * This is a hand-written parser rather than `ssh-keygen -F`: -F only lists the
 * lines whose names match (it does not compare keys, and does not treat a
 * revoked key as revoked for every host), so the key comparison, the marker
 * rules and the verdict would be ours anyway; a pure function also needs no
 * program, file or process per connection. The tests check it against files
 * hashed by ssh-keygen -H itself.
 */
import { createHash, createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { P2vError } from '../lib/errors.js';

/** OpenSSH-style fingerprint of a public key blob: "SHA256:" + unpadded base64. */
export function fingerprintOf(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '');
}

/** The names OpenSSH looks the host up by: the bare name on port 22 (or `[host]:22`), `[host]:port` otherwise. */
function hostNames(host: string, port: number): string[] {
  const h = host.toLowerCase();
  return port === 22 ? [h, `[${h}]:22`] : [`[${h}]:${port}`];
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    '^' +
      pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.') +
      '$',
  );
  return re.test(name);
}

function matchesHostField(field: string, names: string[]): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const key = Buffer.from(salt, 'base64');
    return names.some((n) => createHmac('sha1', key).update(n).digest('base64') === hash);
  }
  let matched = false;
  for (const raw of field.split(',')) {
    const negated = raw.startsWith('!');
    const pattern = (negated ? raw.slice(1) : raw).toLowerCase();
    if (names.some((n) => globMatch(pattern, n))) {
      if (negated) return false; // a negated match takes the whole line out
      matched = true;
    }
  }
  return matched;
}

interface KnownHostsLine {
  marker: 'revoked' | 'cert-authority' | undefined;
  hosts: string;
  key: string;
}

function parseLines(text: string): KnownHostsLine[] {
  const out: KnownHostsLine[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: KnownHostsLine['marker'];
    let i = 0;
    if (fields[0]?.startsWith('@')) {
      if (fields[0] === '@revoked') marker = 'revoked';
      else if (fields[0] === '@cert-authority') marker = 'cert-authority';
      else continue; // a marker we do not know: OpenSSH skips the line too
      i = 1;
    }
    const [hosts, , key] = [fields[i], fields[i + 1], fields[i + 2]];
    if (hosts && key) out.push({ marker, hosts, key });
  }
  return out;
}

export type HostKeyVerdict =
  { ok: true } | { ok: false; reason: 'unknown' | 'changed' | 'revoked' | 'cert-authority'; fingerprint: string };

/** Decide whether `keyBlob` is the right key for host:port according to `knownHostsText`. */
export function checkKnownHosts(knownHostsText: string, host: string, port: number, keyBlob: Buffer): HostKeyVerdict {
  const names = hostNames(host, port);
  const blob64 = keyBlob.toString('base64');
  const fingerprint = fingerprintOf(keyBlob);
  const lines = parseLines(knownHostsText);
  if (lines.some((l) => l.marker === 'revoked' && l.key === blob64))
    return { ok: false, reason: 'revoked', fingerprint };
  const forHost = lines.filter((l) => l.marker !== 'revoked' && matchesHostField(l.hosts, names));
  if (forHost.some((l) => l.marker === undefined && l.key === blob64)) return { ok: true };
  if (forHost.some((l) => l.marker === undefined)) return { ok: false, reason: 'changed', fingerprint };
  if (forHost.some((l) => l.marker === 'cert-authority')) return { ok: false, reason: 'cert-authority', fingerprint };
  return { ok: false, reason: 'unknown', fingerprint };
}

/** The one-line refusal (with what to do) for a verdict that is not ok. */
export function refusalFor(v: Exclude<HostKeyVerdict, { ok: true }>, host: string): P2vError {
  const fp = v.fingerprint;
  switch (v.reason) {
    case 'unknown':
      return new P2vError('SSH', `host key of ${host} (${fp}) is not in known_hosts`, {
        hint: `verify it out of band, then pin it with --host-key ${fp} or add it to known_hosts`,
      });
    case 'changed':
      return new P2vError('SSH', `host key of ${host} CHANGED (now ${fp}): refusing to send`, {
        hint: 'someone may be intercepting the connection; check the stager key out of band',
      });
    case 'revoked':
      return new P2vError('SSH', `host key of ${host} (${fp}) is marked @revoked in known_hosts: refusing to send`, {
        hint: 'the stager must get a new host key; check it out of band and pin it with --host-key',
      });
    case 'cert-authority':
      return new P2vError(
        'SSH',
        `known_hosts vouches for ${host} only through a @cert-authority line, and p2v-export cannot check host certificates`,
        { hint: `verify the key out of band, then pin it with --host-key ${fp}` },
      );
  }
}

export async function readKnownHosts(paths: string[]): Promise<string> {
  const parts: string[] = [];
  for (const p of paths) {
    try {
      parts.push(await readFile(p, 'utf8'));
    } catch {
      /* a missing file is an empty one */
    }
  }
  return parts.join('\n');
}
