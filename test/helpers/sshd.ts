/**
 * A real OpenSSH server on 127.0.0.1 for transport tests: its own host key,
 * config and authorized_keys in a temp dir; stopped by stop(). With
 * `systemAccounts` it logs users in as a stock Debian sshd does instead.
 */
import { execa, type ResultPromise } from 'execa';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { needPrograms } from './programs.js';

export interface Sshd {
  port: number;
  hostKeyPub: string; // "ssh-ed25519 AAAA…"
  clientKey: string; // private key path
  clientKeyPub: string;
  knownHosts: string; // path of a known_hosts naming this server
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export interface SshdOptions {
  /**
   * Log users in the way a stock Debian sshd does: each user's own
   * ~/.ssh/authorized_keys, StrictModes and PAM (a locked system account
   * passes), instead of the test's authorized_keys file.
   */
  systemAccounts?: boolean;
  /** PATH of the sessions (default: this process's PATH). */
  sessionPath?: string;
}

/**
 * Start sshd; `authorizedLine(pubkey)` returns the authorized_keys line (e.g.
 * with command="…",restrict); null with `systemAccounts`, where the users'
 * own files decide.
 */
export async function startSshd(
  dir: string,
  authorizedLine: ((pub: string) => string) | null,
  opts: SshdOptions = {},
): Promise<Sshd> {
  await needPrograms('sshd', 'ssh-keygen');
  await mkdir('/run/sshd', { recursive: true });
  const hostKey = join(dir, 'host_ed25519');
  const clientKey = join(dir, 'client_ed25519');
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', clientKey]);
  const hostKeyPub = (await readFile(hostKey + '.pub', 'utf8')).trim().split(' ').slice(0, 2).join(' ');
  const clientKeyPub = (await readFile(clientKey + '.pub', 'utf8')).trim();
  const auth = join(dir, 'authorized_keys');
  if (authorizedLine) {
    await writeFile(auth, authorizedLine(clientKeyPub) + '\n');
    await chmod(auth, 0o600);
  }
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      ...(opts.systemAccounts
        ? ['UsePAM yes', 'StrictModes yes']
        : [`AuthorizedKeysFile ${auth}`, 'UsePAM no', 'StrictModes no']),
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'LogLevel ERROR',
      `SetEnv PATH=${opts.sessionPath ?? process.env.PATH}`,
    ].join('\n') + '\n',
  );
  const knownHosts = join(dir, 'known_hosts');
  await writeFile(knownHosts, `[127.0.0.1]:${port} ${hostKeyPub}\n`);
  const child: ResultPromise = execa('/usr/sbin/sshd', ['-D', '-e', '-f', config], { reject: false, stdin: 'ignore' });
  // Wait until it accepts connections.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await execa('ssh-keyscan', ['-p', String(port), '127.0.0.1'], { reject: false, timeout: 2000 });
    if (r.stdout.includes('ssh-ed25519')) break;
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`sshd did not start: ${String((await child).stderr)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    hostKeyPub,
    clientKey,
    clientKeyPub,
    knownHosts,
    stop: async () => {
      child.kill('SIGTERM');
      await child;
    },
  };
}
