// known_hosts as OpenSSH reads it: @revoked wins wherever it stands, @cert-authority is refused
// clearly (ssh2 cannot check host certificates), hashed names made by ssh-keygen -H itself match.
import { describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { checkKnownHosts, fingerprintOf, readKnownHosts, refusalFor } from '../../exporter/known-hosts.js';
import { formatError } from '../../lib/errors.js';
import { needPrograms } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';

/** A real ed25519 public key from ssh-keygen: [type, base64 blob]. */
async function newKey(dir: string, name: string): Promise<{ line: string; blob: Buffer }> {
  const path = join(dir, name);
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', path]);
  const [type, b64] = (await readFile(`${path}.pub`, 'utf8')).trim().split(/\s+/);
  return { line: `${type} ${b64}`, blob: Buffer.from(b64!, 'base64') };
}

async function withKeys<T>(
  body: (dir: string, k: { line: string; blob: Buffer }, other: { line: string; blob: Buffer }) => Promise<T>,
) {
  await needPrograms('ssh-keygen');
  return withTmpDir('kh', async (dir) => body(dir, await newKey(dir, 'k'), await newKey(dir, 'o')));
}

/** The file hashed by ssh-keygen -H (which rewrites it in place). */
async function hashedBySshKeygen(dir: string, text: string): Promise<string> {
  const f = join(dir, `known_hosts.${Math.random().toString(36).slice(2)}`);
  await writeFile(f, text);
  await execa('ssh-keygen', ['-H', '-f', f]);
  return readFile(f, 'utf8');
}

describe('known_hosts', () => {
  it('accepts plain entries on port 22, [host]:port entries, lists and wildcards, case-insensitively', async () => {
    await withKeys(async (_dir, k) => {
      expect(checkKnownHosts(`stager.example ${k.line}\n`, 'stager.example', 22, k.blob)).toEqual({ ok: true });
      expect(checkKnownHosts(`Stager.Example ${k.line}\n`, 'stager.EXAMPLE', 22, k.blob)).toEqual({ ok: true });
      expect(checkKnownHosts(`[127.0.0.1]:2222 ${k.line}\n`, '127.0.0.1', 2222, k.blob)).toEqual({ ok: true });
      expect(checkKnownHosts(`stager.example,10.1.1.1 ${k.line}\n`, '10.1.1.1', 22, k.blob)).toEqual({ ok: true });
      expect(checkKnownHosts(`*.example ${k.line}\n`, 'a.example', 22, k.blob)).toEqual({ ok: true });
      // A plain name is port 22 only; a negated pattern takes the line out.
      expect(checkKnownHosts(`127.0.0.1 ${k.line}\n`, '127.0.0.1', 2222, k.blob)).toMatchObject({ reason: 'unknown' });
      expect(checkKnownHosts(`*.example,!bad.example ${k.line}\n`, 'bad.example', 22, k.blob)).toMatchObject({
        reason: 'unknown',
      });
    });
  });

  it('says unknown for an absent host and changed for a different key', async () => {
    await withKeys(async (_dir, k, o) => {
      expect(checkKnownHosts(`other ${k.line}\n`, 'stager', 22, k.blob)).toEqual({
        ok: false,
        reason: 'unknown',
        fingerprint: fingerprintOf(k.blob),
      });
      expect(checkKnownHosts(`stager ${o.line}\n`, 'stager', 22, k.blob)).toEqual({
        ok: false,
        reason: 'changed',
        fingerprint: fingerprintOf(k.blob),
      });
    });
  });

  it('refuses a @revoked key wherever the line stands: before, after, in another file, for another name', async () => {
    await withKeys(async (dir, k, o) => {
      const plain = `stager ${k.line}`;
      const revoked = `@revoked stager ${k.line}`;
      const orders = [
        [revoked, plain],
        [plain, revoked],
        [plain, `other ${o.line}`, revoked],
        [plain, `@revoked * ${k.line}`],
        [plain, `@revoked unrelated.host ${k.line}`],
      ];
      for (const lines of orders) {
        expect(checkKnownHosts(lines.join('\n') + '\n', 'stager', 22, k.blob), lines.join(' | ')).toEqual({
          ok: false,
          reason: 'revoked',
          fingerprint: fingerprintOf(k.blob),
        });
      }
      // The plain line in the first file, the revocation in the second (--known-hosts twice).
      await writeFile(join(dir, 'a'), plain + '\n');
      await writeFile(join(dir, 'b'), revoked + '\n');
      const both = await readKnownHosts([join(dir, 'a'), join(dir, 'b')]);
      expect(checkKnownHosts(both, 'stager', 22, k.blob)).toMatchObject({ ok: false, reason: 'revoked' });
      // A revoked key elsewhere does not spoil a good one; hashed revocations count too.
      expect(checkKnownHosts(`${plain}\n@revoked stager ${o.line}\n`, 'stager', 22, k.blob)).toEqual({ ok: true });
      // ssh-keygen -H hashes the plain line and leaves the marker line as it is: the revocation still wins.
      const hashedRevoked = await hashedBySshKeygen(dir, `${plain}\n${revoked}\n`);
      expect(hashedRevoked.split('\n')[0]).toMatch(/^\|1\|/);
      expect(checkKnownHosts(hashedRevoked, 'stager', 22, k.blob)).toMatchObject({ reason: 'revoked' });
      expect(
        formatError('p2v-export', refusalFor({ ok: false, reason: 'revoked', fingerprint: 'SHA256:x' }, 'stager')),
      ).toBe(
        'p2v-export: host key of stager (SHA256:x) is marked @revoked in known_hosts: refusing to send\n' +
          'p2v-export: hint: the stager must get a new host key; check it out of band and pin it with --host-key',
      );
    });
  });

  it('matches names hashed by ssh-keygen -H, on port 22 and on other ports, and only there', async () => {
    await withKeys(async (dir, k, o) => {
      const text = await hashedBySshKeygen(
        dir,
        `stager.example ${k.line}\n[stager.example]:2222 ${k.line}\n[10.0.0.9]:2200 ${o.line}\n`,
      );
      const hosts = text
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' ')[0]);
      expect(hosts.every((h) => h!.startsWith('|1|'))).toBe(true);
      expect(checkKnownHosts(text, 'stager.example', 22, k.blob)).toEqual({ ok: true });
      expect(checkKnownHosts(text, 'stager.example', 2222, k.blob)).toEqual({ ok: true });
      expect(checkKnownHosts(text, 'stager.example', 2200, k.blob)).toMatchObject({ reason: 'unknown' });
      expect(checkKnownHosts(text, '10.0.0.9', 2200, o.blob)).toEqual({ ok: true });
      expect(checkKnownHosts(text, '10.0.0.9', 2200, k.blob)).toMatchObject({ reason: 'changed' });
      expect(checkKnownHosts(text, '10.0.0.9', 22, o.blob)).toMatchObject({ reason: 'unknown' });
      // ssh-keygen -F finds the same lines we accept.
      const f = join(dir, 'kh');
      await writeFile(f, text);
      const found = await execa('ssh-keygen', ['-F', '[stager.example]:2222', '-f', f]);
      expect(found.stdout).toContain(k.line.split(' ')[1]);
    });
  });

  it('refuses a host vouched for only by a @cert-authority line, with its own message', async () => {
    await withKeys(async (_dir, k, o) => {
      const ca = `@cert-authority *.example ${o.line}`;
      const v = checkKnownHosts(`${ca}\n`, 'stager.example', 22, k.blob);
      expect(v).toEqual({ ok: false, reason: 'cert-authority', fingerprint: fingerprintOf(k.blob) });
      expect(formatError('p2v-export', refusalFor(v as Exclude<typeof v, { ok: true }>, 'stager.example'))).toBe(
        'p2v-export: known_hosts vouches for stager.example only through a @cert-authority line, and p2v-export cannot check host certificates\n' +
          `p2v-export: hint: verify the key out of band, then pin it with --host-key ${fingerprintOf(k.blob)}`,
      );
      // The CA's own key is never taken as the host's key.
      expect(checkKnownHosts(`@cert-authority stager ${k.line}\n`, 'stager', 22, k.blob)).toMatchObject({
        reason: 'cert-authority',
      });
      // A plain line for the key still accepts it; a plain line for another key is a change.
      expect(checkKnownHosts(`${ca}\nstager.example ${k.line}\n`, 'stager.example', 22, k.blob)).toEqual({ ok: true });
      expect(checkKnownHosts(`stager.example ${o.line}\n${ca}\n`, 'stager.example', 22, k.blob)).toMatchObject({
        reason: 'changed',
      });
      // An unknown marker makes the line not count.
      expect(checkKnownHosts(`@future stager ${k.line}\n`, 'stager', 22, k.blob)).toMatchObject({ reason: 'unknown' });
    });
  });

  it('fingerprints like ssh-keygen -l', async () => {
    await withKeys(async (dir, k) => {
      const { stdout } = await execa('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'k.pub')]);
      expect(stdout.split(' ')[1]).toBe(fingerprintOf(k.blob));
    });
    expect(fingerprintOf(Buffer.from('abc'))).toBe('SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0');
  });
});
