/**
 * The built-in transport: `p2v-export --ssh user@stager` runs the receiver on
 * the stager through ssh2 and pipes the OVA stream into it, exactly like
 * `p2v-export --ovf | ssh user@stager p2v-import`. The receiver may be a
 * forced command (restricted key): whatever command we ask for, the server
 * decides. Host keys are verified (known-hosts.ts) before any byte is sent.
 */
import type { ConnectConfig } from 'ssh2';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { P2vError } from '../lib/errors.js';
import { checkKnownHosts, fingerprintOf, readKnownHosts, refusalFor } from './known-hosts.js';

export interface SshTarget {
  user: string;
  host: string;
  port: number;
}

export interface SshOptions {
  target: SshTarget;
  /** Private key file; default: ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa. */
  keyFile?: string;
  /** Pinned host key fingerprint "SHA256:…"; when given, known_hosts is not consulted. */
  hostKey?: string;
  /** known_hosts files; default ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts. */
  knownHosts?: string[];
  command: string;
  /** Where the remote stderr goes (our stderr by default). */
  stderr?: Writable;
  readyTimeoutMs?: number;
}

export interface RemoteReceiver {
  /** Write the OVA stream here; end it when done. */
  stdin: Writable;
  /** Resolves when the remote command exits 0; rejects with its status otherwise. */
  done: Promise<void>;
  close(): void;
}

/** Parse "user@host[:port]" (user defaults to $USER or root). */
export function parseSshTarget(spec: string): SshTarget {
  const m = /^(?:([^@\s]+)@)?(\[[^\]]+\]|[^:\s@]+)(?::(\d+))?$/.exec(spec);
  if (!m) throw new P2vError('USAGE', `bad --ssh target "${spec}"`, { hint: 'use USER@HOST or USER@HOST:PORT' });
  const port = m[3] ? Number(m[3]) : 22;
  if (port < 1 || port > 65535) throw new P2vError('USAGE', `bad port in --ssh target "${spec}"`);
  return { user: m[1] ?? process.env.USER ?? 'root', host: m[2]!.replace(/^\[|\]$/g, ''), port };
}

async function privateKeyFor(opts: SshOptions): Promise<Pick<ConnectConfig, 'privateKey' | 'agent'>> {
  if (opts.keyFile) {
    try {
      return { privateKey: await readFile(opts.keyFile) };
    } catch (e) {
      throw new P2vError('USAGE', `cannot read key file ${opts.keyFile}`, { cause: e });
    }
  }
  if (process.env.SSH_AUTH_SOCK) return { agent: process.env.SSH_AUTH_SOCK };
  for (const name of ['id_ed25519', 'id_ecdsa', 'id_rsa']) {
    try {
      return { privateKey: await readFile(join(homedir(), '.ssh', name)) };
    } catch {
      /* next */
    }
  }
  throw new P2vError('SSH', 'no SSH key to log in to the stager', { hint: 'give --key FILE or start ssh-agent' });
}

/** Connect, verify the host key, start the remote receiver. */
export async function openRemoteReceiver(opts: SshOptions): Promise<RemoteReceiver> {
  const { target } = opts;
  const known = opts.hostKey
    ? undefined
    : await readKnownHosts(opts.knownHosts ?? [join(homedir(), '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts']);
  let refusal: P2vError | undefined;
  // Loaded here, not at start-up: ssh2 is ~110 ms of every p2v-export's start, and most runs never use it.
  const { Client } = await import('ssh2');
  const conn = new Client();
  const auth = await privateKeyFor(opts);
  await new Promise<void>((resolve, reject) => {
    conn.once('ready', () => resolve());
    conn.once('error', (e: Error) =>
      reject(
        refusal ??
          new P2vError('SSH', `cannot connect to ${target.host}:${target.port}: ${e.message}`, {
            cause: e,
            hint: 'check the stager address, the key, and that sshd runs there',
          }),
      ),
    );
    try {
      conn.connect({
        host: target.host,
        port: target.port,
        username: target.user,
        readyTimeout: opts.readyTimeoutMs ?? 20_000,
        ...auth,
        hostVerifier: (key: Buffer) => {
          const fp = fingerprintOf(key);
          if (opts.hostKey) {
            if (fp === opts.hostKey) return true;
            refusal = new P2vError('SSH', `host key of ${target.host} is ${fp}, not the pinned ${opts.hostKey}`, {
              hint: 'if the stager was reinstalled, check the new key out of band and pin it',
            });
            return false;
          }
          const v = checkKnownHosts(known ?? '', target.host, target.port, key);
          if (v.ok) return true;
          refusal = refusalFor(v, target.host);
          return false;
        },
      });
    } catch (e) {
      reject(
        new P2vError(
          'SSH',
          `cannot use the SSH key${opts.keyFile ? ' ' + opts.keyFile : ''}: ${(e as Error).message}`,
          { hint: 'give an unencrypted OpenSSH private key with --key, or load the key into ssh-agent' },
        ),
      );
    }
  });
  const channel = await new Promise<import('ssh2').ClientChannel>((resolve, reject) => {
    conn.exec(opts.command, (err, ch) =>
      err
        ? reject(new P2vError('SSH', `cannot start "${opts.command}" on ${target.host}: ${err.message}`))
        : resolve(ch),
    );
  });
  channel.stderr.pipe(opts.stderr ?? process.stderr, { end: false });
  const done = new Promise<void>((resolve, reject) => {
    channel.once('exit', (code: number | null, signal?: string) => {
      if (code === 0) resolve();
      else
        reject(
          new P2vError(
            'SSH',
            `the receiver on ${target.host} failed (${code !== null ? 'exit status ' + code : 'signal ' + signal})`,
            { hint: 'its own error message is above' },
          ),
        );
    });
    channel.once('close', () =>
      reject(new P2vError('SSH', `connection to ${target.host} closed before the receiver finished`)),
    );
    conn.once('error', (e: Error) => reject(new P2vError('SSH', `connection to ${target.host} failed: ${e.message}`)));
  });
  // Once the receiver has failed, writes into its channel must fail too instead of waiting for a reader.
  done.catch(() => channel.destroy()).finally(() => conn.end());
  return { stdin: channel, done, close: () => conn.end() };
}
