import { describe, expect, it } from 'vitest';
import { authorizedKeysLine, forcedCommand, parsePublicKey } from '../../importer/stager-key.js';

/** A syntactically real ed25519 public key blob: string "ssh-ed25519", then 32 key bytes. */
function ed25519Blob(): string {
  const type = Buffer.from('ssh-ed25519');
  const len = (n: number) => Buffer.from([0, 0, 0, n]);
  return Buffer.concat([len(type.length), type, len(32), Buffer.alloc(32, 7)]).toString('base64');
}

describe('the stager key line', () => {
  it('reads one .pub key, keeping a plain comment', () => {
    const blob = ed25519Blob();
    expect(parsePublicKey(`# owner key\nssh-ed25519 ${blob} root@web1 "x"\n`, 'k.pub')).toEqual({
      type: 'ssh-ed25519',
      blob,
      comment: 'root@web1 x',
    });
  });

  it('refuses private keys, options, two keys and a forged type word', () => {
    const blob = ed25519Blob();
    expect(() => parsePublicKey('-----BEGIN OPENSSH PRIVATE KEY-----\n', 'id')).toThrow(/id is a private key/);
    for (const text of [
      `command="sh" ssh-ed25519 ${blob}`,
      `ssh-ed25519 ${blob}\nssh-ed25519 ${blob}`,
      `ssh-rsa ${blob}`,
      '',
    ])
      expect(() => parsePublicKey(text, 'k.pub')).toThrow(/k.pub does not hold one SSH public key/);
  });

  it('builds the restricted line around the forced command', () => {
    const cmd = forcedCommand('/srv/p2v', '/srv/p2v/exports', '500G');
    expect(cmd).toBe(
      'p2v-import --staging /srv/p2v --ganeti-export /srv/p2v/exports --disk-size 500G --require-manifest',
    );
    expect(authorizedKeysLine(cmd, 'ssh-ed25519 AAAA c')).toBe(`command="${cmd}",restrict ssh-ed25519 AAAA c`);
  });
});
