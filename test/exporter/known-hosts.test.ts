import { describe, expect, it } from 'vitest';
import { createHmac, randomBytes } from 'node:crypto';
import { checkKnownHosts, fingerprintOf } from '../../exporter/known-hosts.js';

const key = randomBytes(51);
const other = randomBytes(51);
const b64 = key.toString('base64');

function hashed(host: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(host).digest('base64')}`;
}

describe('known_hosts', () => {
  it('accepts a plain entry on port 22 and a [host]:port entry', () => {
    expect(checkKnownHosts(`stager.example ssh-ed25519 ${b64}\n`, 'stager.example', 22, key)).toEqual({ ok: true });
    expect(checkKnownHosts(`[127.0.0.1]:2222 ssh-ed25519 ${b64}\n`, '127.0.0.1', 2222, key)).toEqual({ ok: true });
    expect(checkKnownHosts(`stager.example,10.1.1.1 ssh-ed25519 ${b64}\n`, '10.1.1.1', 22, key)).toEqual({ ok: true });
  });

  it('accepts a hashed entry and wildcards', () => {
    expect(checkKnownHosts(`${hashed('[stager]:2200')} ssh-ed25519 ${b64}\n`, 'stager', 2200, key)).toEqual({
      ok: true,
    });
    expect(checkKnownHosts(`*.example ssh-ed25519 ${b64}\n`, 'a.example', 22, key)).toEqual({ ok: true });
  });

  it('says unknown for an absent host and changed for a different key', () => {
    expect(checkKnownHosts(`other ssh-ed25519 ${b64}\n`, 'stager', 22, key)).toEqual({
      ok: false,
      reason: 'unknown',
      fingerprint: fingerprintOf(key),
    });
    expect(checkKnownHosts(`stager ssh-ed25519 ${other.toString('base64')}\n`, 'stager', 22, key)).toEqual({
      ok: false,
      reason: 'changed',
      fingerprint: fingerprintOf(key),
    });
  });

  it('honours @revoked and ignores @cert-authority', () => {
    expect(
      checkKnownHosts(`@revoked stager ssh-ed25519 ${b64}\nstager ssh-ed25519 ${b64}\n`, 'stager', 22, key).ok,
    ).toBe(false);
    expect(checkKnownHosts(`@cert-authority stager ssh-ed25519 ${b64}\n`, 'stager', 22, key)).toMatchObject({
      reason: 'unknown',
    });
  });

  it('fingerprints like ssh-keygen -l', () => {
    expect(fingerprintOf(Buffer.from('abc'))).toBe('SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0');
  });
});
