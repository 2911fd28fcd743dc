/**
 * Host key verification for the --ssh and --direct transports: the stager's
 * key must match a pinned fingerprint (--host-key SHA256:…) or an entry in
 * known_hosts (plain or hashed host names, [host]:port form). An unknown or
 * changed key is refused: we never trust on first use, because the stream
 * carries a whole machine.
 */
import { createHash, createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** OpenSSH-style fingerprint of a public key blob: "SHA256:" + unpadded base64. */
export function fingerprintOf(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '');
}

function hostPatterns(host: string, port: number): string[] {
  return port === 22 ? [host, `[${host}]:22`] : [`[${host}]:${port}`];
}

function matchesHostField(field: string, candidates: string[]): boolean {
  // Hashed form: |1|base64(salt)|base64(HMAC-SHA1(salt, host))
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const key = Buffer.from(salt, 'base64');
    return candidates.some((c) => createHmac('sha1', key).update(c).digest('base64') === hash);
  }
  let matched = false;
  for (const pat of field.split(',')) {
    const negated = pat.startsWith('!');
    const p = negated ? pat.slice(1) : pat;
    const re = new RegExp(
      '^' +
        p
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.') +
        '$',
    );
    if (candidates.some((c) => re.test(c))) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

export type HostKeyVerdict = { ok: true } | { ok: false; reason: 'unknown' | 'changed'; fingerprint: string };

/** Decide whether `keyBlob` is the right key for host:port according to `knownHostsText`. */
export function checkKnownHosts(knownHostsText: string, host: string, port: number, keyBlob: Buffer): HostKeyVerdict {
  const candidates = hostPatterns(host, port);
  const blob64 = keyBlob.toString('base64');
  let sawHost = false;
  for (const raw of knownHostsText.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let i = 0;
    let revoked = false;
    if (fields[0]?.startsWith('@')) {
      revoked = fields[0] === '@revoked';
      if (fields[0] === '@cert-authority') continue; // CA keys: not supported, never a match
      i = 1;
    }
    const [hosts, , key] = [fields[i], fields[i + 1], fields[i + 2]];
    if (!hosts || !key || !matchesHostField(hosts, candidates)) continue;
    if (revoked) {
      if (key === blob64) return { ok: false, reason: 'changed', fingerprint: fingerprintOf(keyBlob) };
      continue;
    }
    sawHost = true;
    if (key === blob64) return { ok: true };
  }
  return { ok: false, reason: sawHost ? 'changed' : 'unknown', fingerprint: fingerprintOf(keyBlob) };
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
