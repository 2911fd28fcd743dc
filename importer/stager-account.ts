/**
 * The stager account the owners' keys log into: looked up with getent and
 * id, created with useradd when missing (a system account whose /bin/sh runs
 * the forced command), and refused when it could not hold a restricted key
 * (root, no shell, no home of its own).
 */
import { realpath } from 'node:fs/promises';
import { P2vError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { run } from '../lib/run.js';

export interface Account {
  name: string;
  uid: number;
  gid: number;
  gids: number[];
  home: string;
  shell: string;
}

export async function lookupAccount(name: string): Promise<Account | null> {
  const r = await run('getent', ['passwd', name], { reject: false });
  if (r.exitCode !== 0) return null;
  const f = String(r.stdout).split(':');
  if (f.length < 7) return null;
  const ids = await run('id', ['-G', name], { what: `reading the groups of ${name}` });
  return {
    name,
    uid: Number(f[2]),
    gid: Number(f[3]),
    gids: String(ids.stdout).split(/\s+/).filter(Boolean).map(Number),
    home: f[5]!,
    shell: f[6]!,
  };
}

/** An existing account must be able to hold a restricted key: unprivileged, with a shell and a home. */
export function checkAccount(account: Account): void {
  const { name } = account;
  if (account.uid === 0) {
    throw new P2vError('USAGE', `user ${name} is root`, {
      hint: 'the stager account must be unprivileged: pick another',
    });
  }
  if (!account.shell.startsWith('/') || /\/(nologin|false)$/.test(account.shell)) {
    throw new P2vError('USAGE', `user ${name} has the shell "${account.shell}", which cannot run a forced command`, {
      hint: `give it a shell: usermod --shell /bin/sh ${name}`,
    });
  }
  if (!account.home.startsWith('/') || account.home === '/' || account.home === '/nonexistent') {
    throw new P2vError('USAGE', `user ${name} has the home directory "${account.home}"`, {
      hint: `give it one of its own: usermod --home /home/${name} --move-home ${name}`,
    });
  }
}

export async function ensureAccount(name: string, logger: Logger): Promise<Account & { created: boolean }> {
  let account = await lookupAccount(name);
  const created = account === null;
  if (!account) {
    // --system: no password, no aging; /bin/sh runs the forced command.
    await run('useradd', ['--system', '--create-home', '--shell', '/bin/sh', name], { what: `creating user ${name}` });
    account = await lookupAccount(name);
    if (!account) throw new P2vError('IO', `user ${name} was created but cannot be found`);
    logger.info(`user ${name}: created (uid ${account.uid}, home ${account.home})`);
  } else {
    logger.info(`user ${name}: exists (uid ${account.uid}, home ${account.home})`);
  }
  checkAccount(account);
  // The home comes from passwd (root's configuration): resolve its symlinks once.
  account.home = await realpath(account.home).catch(() => account.home);
  return { ...account, created };
}
