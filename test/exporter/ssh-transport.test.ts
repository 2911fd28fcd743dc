import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { openRemoteReceiver, parseSshTarget } from '../../exporter/ssh-transport.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';

let dir: string;
let sshd: Sshd;
let sink: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'p2v-ssh-'));
  sink = join(dir, 'received');
  // A forced command: whatever the client asks to run, the server runs this.
  sshd = await startSshd(dir, (pub) => `command="cat > ${sink}",restrict ${pub}`);
});
afterAll(async () => {
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('SSH transport (real OpenSSH on loopback)', () => {
  it('streams bytes into the forced command after checking known_hosts', async () => {
    const rx = await openRemoteReceiver({
      target: { user: 'root', host: '127.0.0.1', port: sshd.port },
      keyFile: sshd.clientKey,
      knownHosts: [sshd.knownHosts],
      command: 'p2v-import --whatever /etc',
    });
    const payload = Buffer.alloc(3 << 20, 7);
    rx.stdin.end(payload);
    await rx.done;
    expect((await readFile(sink)).equals(payload)).toBe(true);
  });

  it('accepts a pinned fingerprint equal to ssh-keygen -l', async () => {
    const fp = (await execa('ssh-keygen', ['-lf', join(dir, 'host_ed25519.pub')])).stdout.split(' ')[1]!;
    const rx = await openRemoteReceiver({
      target: { user: 'root', host: '127.0.0.1', port: sshd.port },
      keyFile: sshd.clientKey,
      hostKey: fp,
      command: 'x',
    });
    rx.stdin.end('ok');
    await rx.done;
    expect(await readFile(sink, 'utf8')).toBe('ok');
  });

  it('refuses an unknown host key before sending anything', async () => {
    await expect(
      openRemoteReceiver({
        target: { user: 'root', host: '127.0.0.1', port: sshd.port },
        keyFile: sshd.clientKey,
        knownHosts: [join(dir, 'nonexistent')],
        command: 'x',
      }),
    ).rejects.toThrow(/^host key of 127\.0\.0\.1 \(SHA256:[A-Za-z0-9+/]+\) is not in known_hosts$/);
  });

  it('refuses a wrong pinned key', async () => {
    await expect(
      openRemoteReceiver({
        target: { user: 'root', host: '127.0.0.1', port: sshd.port },
        keyFile: sshd.clientKey,
        hostKey: 'SHA256:AAAA',
        command: 'x',
      }),
    ).rejects.toThrow(/^host key of 127\.0\.0\.1 is SHA256:\S+, not the pinned SHA256:AAAA$/);
  });

  it('parses targets', () => {
    expect(parseSshTarget('p2v@stager:2222')).toEqual({ user: 'p2v', host: 'stager', port: 2222 });
    expect(parseSshTarget('root@[::1]:22')).toEqual({ user: 'root', host: '::1', port: 22 });
    expect(() => parseSshTarget('a@b:99999')).toThrow('bad port');
  });
});
