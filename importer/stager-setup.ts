/**
 * `p2v-import --setup-stager`: make this machine a stager in one step, as
 * root, from a built checkout. It puts the four tools on every user's PATH
 * (small wrapper scripts in /usr/local/bin that run this checkout's bin/*.js
 * with this node), creates the unprivileged account the machine owners' keys
 * log into, gives it its staging and export directories, and prints (or
 * appends) the restricted authorized_keys line whose forced command is the
 * whole stager configuration (forced-command.ts).
 *
 * Why a command and not a page of steps: each step an admin did by hand was a
 * way for the stager not to work (a forced command not on sshd's PATH, a
 * staging directory root still owned, a checkout under /root the account
 * cannot read, a key line without the size policy). Running it again is
 * harmless: what is already right is left alone, what is in the way and not
 * ours is refused, never replaced.
 *
 * Everything it writes is written without following a symlink it did not
 * make: every path component is lstat'ed and refused if it is a symlink, the
 * directories it hands to the account are opened with O_NOFOLLOW and checked
 * through /proc/self/fd before their owner changes, and files are created
 * exclusively.
 */
import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, readlink, realpath, rename, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { runCli } from '../lib/cli.js';
import { P2vError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/log.js';
import { quoteArgv, run } from '../lib/run.js';
import { parseSize } from './size.js';

export interface StagerSetupOptions {
  /** The account the owners' keys log into (created when missing). */
  user: string;
  /** Absolute path of the staging directory (the forced command's --staging). */
  staging: string;
  /** Absolute path of the Ganeti export directory; default `<staging>/exports`. */
  exports?: string;
  /** The forced command's --disk-size policy, e.g. "500G". */
  diskSize: string;
  /** Where the wrappers go; must be on the PATH sshd gives a session. */
  binDir: string;
  /** An owner's public key file to add to the account's authorized_keys. */
  keyFile?: string;
  /** The built checkout the wrappers run (default: the one this module is in). */
  checkout: string;
  /** The node the wrappers run (default: this one). */
  node: string;
  logger: Logger;
}

export interface StagerSetupResult {
  user: Account & { created: boolean };
  wrappers: string[];
  staging: string;
  exports: string;
  authorizedKeys: string;
  /** The authorized_keys line: with the key of keyFile, else with KEY_PLACEHOLDER. */
  line: string;
  /** 'added' or 'present' with keyFile; undefined without. */
  key?: 'added' | 'present';
}

export interface Account {
  name: string;
  uid: number;
  gid: number;
  gids: number[];
  home: string;
  shell: string;
}

export const TOOLS = ['p2v-import', 'p2v-export', 'p2v-ganeti-os', 'p2v-ramboot'] as const;
export const DEFAULT_BIN_DIR = '/usr/local/bin';
export const DEFAULT_DISK_SIZE = '500G';
export const KEY_PLACEHOLDER = 'ssh-ed25519 AAAA… owner@machine';
/** The PATH Debian's sshd gives a session (compiled in; `sshd -T` does not show it). */
export const SSHD_DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin:/usr/games';
/** Marks a wrapper as ours, so that a second run may replace it and nothing else. */
const WRAPPER_MARK = 'installed by `p2v-import --setup-stager`';

const STAGING_MODE = 0o750;
const SSH_DIR_MODE = 0o700;
const KEYS_MODE = 0o600;
const MAX_KEY_FILE = 16 * 1024;
const MAX_AUTHORIZED_KEYS = 1024 * 1024;

/** Paths that end up inside `command="…"` and a shell script: plain characters only. */
const SAFE_PATH = /^(\/[A-Za-z0-9._+-]+)+$/;
const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const KEY_TYPES = new Set([
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);

/** The checkout this module was built from: dist/importer/stager-setup.js → ../.. */
export function thisCheckout(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

export function forcedCommand(staging: string, exports: string, diskSize: string): string {
  return `p2v-import --staging ${staging} --ganeti-export ${exports} --disk-size ${diskSize} --require-manifest`;
}

export function authorizedKeysLine(command: string, key: string = KEY_PLACEHOLDER): string {
  return `command="${command}",restrict ${key}`;
}

// ---------------------------------------------------------------------------
// Checks on the arguments, before anything changes.

function checkPath(path: string, option: string): string {
  if (!SAFE_PATH.test(path) || path !== resolve(path) || path.split('/').some((c) => c === '.' || c === '..')) {
    throw new P2vError('USAGE', `${option} must be an absolute path of plain characters, got "${path}"`, {
      hint: 'letters, digits and . _ + - between slashes, e.g. /srv/p2v; it goes into the key line and a script',
    });
  }
  return path;
}

function checkDiskSize(text: string): string {
  parseSize(text, '--disk-size');
  if (!/^\d+[KMGTP]?$/i.test(text)) {
    throw new P2vError('USAGE', `--disk-size for the key line must be a number with a unit, got "${text}"`, {
      hint: 'e.g. 500G or 2T',
    });
  }
  return text;
}

export interface PublicKey {
  type: string;
  blob: string;
  comment: string;
}

/** One OpenSSH public key, as in a `.pub` file; no options, no private key. */
export function parsePublicKey(text: string, file: string): PublicKey {
  if (text.includes('PRIVATE KEY')) {
    throw new P2vError('USAGE', `${file} is a private key`, { hint: 'give the owner\'s public key, the ".pub" file' });
  }
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
  const m = lines.length === 1 ? /^(\S+)\s+([A-Za-z0-9+/]+={0,2})(?:\s+(.*))?$/.exec(lines[0]!) : null;
  const blob = m ? Buffer.from(m[2]!, 'base64') : Buffer.alloc(0);
  // The blob names its own type: a key pasted with a wrong or forged type word is refused.
  const inner = blob.length >= 4 ? blob.subarray(4, 4 + blob.readUInt32BE(0)).toString('latin1') : '';
  if (!m || !KEY_TYPES.has(m[1]!) || inner !== m[1]) {
    throw new P2vError('USAGE', `${file} does not hold one SSH public key`, {
      hint: 'give the owner\'s ".pub" file: one line "ssh-ed25519 AAAA… comment", without options',
    });
  }
  // The comment is only for people reading the file: keep it plain.
  const comment = (m[3] ?? '')
    .replace(/[^A-Za-z0-9@._+:-]+/g, ' ')
    .trim()
    .slice(0, 100);
  return { type: m[1]!, blob: m[2]!, comment };
}

// ---------------------------------------------------------------------------
// Who may reach what.

type Access = 4 | 2 | 1; // r, w, x

function allows(st: Stats, who: { uid: number; gids: number[] }, bit: Access): boolean {
  if (who.uid === 0) return true;
  if (st.uid === who.uid) return ((st.mode >> 6) & bit) !== 0;
  if (who.gids.includes(st.gid)) return ((st.mode >> 3) & bit) !== 0;
  return (st.mode & bit) !== 0;
}

/**
 * The first directory on the way to `target` that `who` cannot search, or
 * `target` itself when `who` lacks `bit` on it; null when all is reachable.
 */
export async function firstBlocked(
  target: string,
  who: { uid: number; gids: number[] },
  bit: Access,
): Promise<{ path: string; mode: number; uid: number } | null> {
  const parts = target.split('/').filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const p = '/' + parts.slice(0, i).join('/');
    const st = await stat(p);
    const need = i === parts.length ? bit : 1;
    if (!allows(st, who, need)) return { path: p, mode: st.mode & 0o7777, uid: st.uid };
  }
  return null;
}

const octal = (mode: number) => '0' + (mode & 0o7777).toString(8);
/** Someone who is not the owner and in no special group: a fresh system account. */
const ANYONE = { uid: -1, gids: [] as number[] };

/**
 * The account will run `node checkout/bin/*.js`: every directory on the way
 * and the files themselves must be open to it. Refuses, before anything
 * changes, the usual case of a checkout under /root.
 */
export async function checkCheckoutUsable(
  checkout: string,
  node: string,
  user: string,
  who: { uid: number; gids: number[] } = ANYONE,
): Promise<void> {
  const has = async (p: string) => (await lstat(p).catch(() => null)) !== null;
  if (!(await has(join(checkout, 'bin', 'p2v-import.js'))) || !(await has(join(checkout, 'package.json')))) {
    throw new P2vError('USAGE', `${checkout} is not a ganeti-p2v checkout`, {
      hint: 'run --setup-stager from the checkout: node bin/p2v-import.js --setup-stager …',
    });
  }
  if (!(await has(join(checkout, 'dist', 'importer', 'cli.js'))) || !(await has(join(checkout, 'node_modules')))) {
    throw new P2vError('USAGE', `${checkout} is not built`, {
      hint: `build it first: cd ${checkout} && npm run setup`,
    });
  }
  const needs: [string, Access][] = [
    [join(checkout, 'bin', 'p2v-import.js'), 4],
    [join(checkout, 'dist', 'importer', 'cli.js'), 4],
    [join(checkout, 'package.json'), 4],
    [join(checkout, 'node_modules'), 1],
  ];
  for (const [p, bit] of needs) {
    const blocked = await firstBlocked(p, who, bit);
    if (blocked) {
      throw new P2vError(
        'USAGE',
        `user ${user} cannot read the checkout: ${blocked.path} is mode ${octal(blocked.mode)}` +
          (blocked.uid === 0 ? ' and owned by root' : ''),
        {
          hint:
            `put the checkout where every user can read it, e.g. cp -a ${checkout} /opt/ganeti-p2v ` +
            `(or git clone it there), and run --setup-stager again from there`,
        },
      );
    }
  }
  const blockedNode = await firstBlocked(node, who, 1);
  if (blockedNode) {
    throw new P2vError(
      'USAGE',
      `user ${user} cannot run ${node}: ${blockedNode.path} is mode ${octal(blockedNode.mode)}`,
      {
        hint: 'install Node.js 20+ where every user can run it (e.g. /usr/bin/node), then run this again',
      },
    );
  }
}

// ---------------------------------------------------------------------------
// Filesystem steps, none of them following a symlink.

/** Run one filesystem step; an errno becomes a one-line error naming the path. */
async function step<T>(what: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof P2vError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new P2vError('IO', `${what}: ${err.code ?? err.message}`, { cause: e });
  }
}

async function lstatOrNull(p: string): Promise<Stats | null> {
  try {
    return await lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function refuseSymlink(p: string): never {
  throw new P2vError('USAGE', `${p} is a symlink`, {
    hint: `give the real path (realpath ${p}); --setup-stager never follows a symlink it did not make`,
  });
}

/**
 * Every directory above `path`: a real directory (created root-owned 0755
 * when missing), never a symlink, searchable by `who`.
 */
async function prepareParents(path: string, who: { uid: number; gids: number[] }, user: string): Promise<void> {
  const parts = path.split('/').filter(Boolean);
  for (let i = 1; i < parts.length; i++) {
    const p = '/' + parts.slice(0, i).join('/');
    let st = await step(`checking ${p}`, () => lstatOrNull(p));
    if (!st) {
      await step(`creating ${p}`, () => mkdir(p, { mode: 0o755 }).catch(ignoreExists));
      st = await step(`checking ${p}`, () => lstat(p));
    }
    if (st.isSymbolicLink()) refuseSymlink(p);
    if (!st.isDirectory()) throw new P2vError('USAGE', `${p} is not a directory`, { hint: 'choose another path' });
    if (!allows(st, who, 1)) {
      throw new P2vError('USAGE', `user ${user} cannot reach ${path}: ${p} is mode ${octal(st.mode)}`, {
        hint: `choose a path every user can traverse, or chmod o+x ${p}`,
      });
    }
  }
}

function ignoreExists(e: NodeJS.ErrnoException): void {
  if (e.code !== 'EEXIST') throw e;
}

/** Open `path` itself (O_NOFOLLOW) and make sure no component on the way was a symlink either. */
async function openNoFollow(path: string, flags: number, mode?: number): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(path, flags | constants.O_NOFOLLOW, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') refuseSymlink(path);
    throw e;
  }
  const real = await readlink(`/proc/self/fd/${fh.fd}`).catch(() => null);
  if (real !== path) {
    await fh.close();
    throw new P2vError('IO', `${path} moved while it was being set up (now ${real ?? 'unknown'})`, {
      hint: 'a symlink was swapped in: check who can write its parent, then run this again',
    });
  }
  return fh;
}

/**
 * `path` as a directory owned by `account` with `mode`. An existing directory
 * is taken over only when it is already the account's or empty: a typo like
 * `--staging /etc` must never hand /etc to the account.
 */
async function ensureAccountDir(path: string, account: Account, mode: number): Promise<'created' | 'kept'> {
  await prepareParents(path, account, account.name);
  const before = await step(`checking ${path}`, () => lstatOrNull(path));
  if (before?.isSymbolicLink()) refuseSymlink(path);
  if (before && !before.isDirectory()) {
    throw new P2vError('USAGE', `${path} exists and is not a directory`, { hint: 'choose another path' });
  }
  if (!before) await step(`creating ${path}`, () => mkdir(path, { mode }));
  else if (before.uid !== account.uid) {
    const entries = await step(`reading ${path}`, () => readdir(path));
    if (entries.length > 0) {
      throw new P2vError('USAGE', `${path} already exists, is not empty and belongs to uid ${before.uid}`, {
        hint: `give a new or empty directory, or chown ${account.name} ${path} yourself if it really is for the stager`,
      });
    }
  }
  const fh = await step(`opening ${path}`, () => openNoFollow(path, constants.O_RDONLY | constants.O_DIRECTORY));
  try {
    await step(`setting the owner of ${path}`, async () => {
      await fh.chown(account.uid, account.gid);
      await fh.chmod(mode);
    });
  } finally {
    await fh.close();
  }
  return before ? 'kept' : 'created';
}

/** A root-owned directory nobody else can write: what every user's PATH may safely hold. */
async function ensureBinDir(binDir: string): Promise<void> {
  await prepareParents(binDir, ANYONE, 'every user');
  let st = await step(`checking ${binDir}`, () => lstatOrNull(binDir));
  if (!st) {
    await step(`creating ${binDir}`, () => mkdir(binDir, { mode: 0o755 }));
    st = await step(`checking ${binDir}`, () => lstat(binDir));
  }
  if (st.isSymbolicLink()) refuseSymlink(binDir);
  if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0 || (st.mode & 0o005) !== 0o005) {
    throw new P2vError('USAGE', `${binDir} is not a root-owned directory that only root can write and all can read`, {
      hint: `use ${DEFAULT_BIN_DIR}, or fix its owner and mode (chown root: ${binDir}; chmod 755 ${binDir})`,
    });
  }
}

function wrapperText(tool: string, node: string, checkout: string): string {
  return [
    '#!/bin/sh',
    `# ${tool}: ${WRAPPER_MARK} from ${checkout}.`,
    '# Run that again after moving the checkout; delete this file to uninstall.',
    `exec ${quoteArgv([node, join(checkout, 'bin', `${tool}.js`)])} "$@"`,
    '',
  ].join('\n');
}

/** Write or update one wrapper; anything in its place that is not ours is refused. */
async function installWrapper(binDir: string, tool: string, text: string): Promise<'installed' | 'unchanged'> {
  const path = join(binDir, tool);
  const st = await step(`checking ${path}`, () => lstatOrNull(path));
  if (st?.isSymbolicLink()) refuseSymlink(path);
  if (st) {
    const old = st.isFile() && st.size < 64 * 1024 ? await step(`reading ${path}`, () => readFile(path, 'utf8')) : '';
    if (!old.includes(WRAPPER_MARK)) {
      throw new P2vError('USAGE', `${path} exists and was not installed by --setup-stager`, {
        hint: `remove it if it is an old copy of ganeti-p2v (rm ${path}), or give another --bin-dir`,
      });
    }
    if (old === text) return 'unchanged';
  }
  // A new file under a fresh name, renamed over the old one: never half a script on PATH.
  const tmp = join(binDir, `.${tool}.${randomBytes(6).toString('hex')}.tmp`);
  await step(`writing ${path}`, async () => {
    const fh = await open(tmp, 'wx', 0o755);
    try {
      await fh.writeFile(text);
      await fh.chmod(0o755);
    } finally {
      await fh.close();
    }
    await rename(tmp, path).catch(async (e) => {
      await unlink(tmp).catch(() => undefined);
      throw e;
    });
  });
  return 'installed';
}

/** Add `line` for `key` to authorized_keys, creating it exclusively; a key already there is left alone. */
async function addAuthorizedKey(
  file: string,
  line: string,
  key: PublicKey,
  account: Account,
): Promise<'added' | 'present'> {
  const { O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_APPEND } = constants;
  try {
    const fh = await openNoFollow(file, O_WRONLY | O_CREAT | O_EXCL | O_APPEND, KEYS_MODE);
    try {
      await fh.chown(account.uid, account.gid);
      await fh.chmod(KEYS_MODE);
      await fh.writeFile(line + '\n');
    } finally {
      await fh.close();
    }
    return 'added';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const fh = await openNoFollow(file, O_RDWR | O_APPEND);
  try {
    const st = await fh.stat();
    if (!st.isFile() || (st.uid !== account.uid && st.uid !== 0) || st.size > MAX_AUTHORIZED_KEYS) {
      throw new P2vError('USAGE', `${file} is not a regular file of ${account.name} or root under 1 MiB`, {
        hint: 'look at it, fix or remove it, and run this again',
      });
    }
    const text = (await fh.readFile()).toString('utf8');
    const lines = text.split('\n');
    const at = lines.findIndex((l) => l.split(/\s+/).includes(key.blob));
    if (at >= 0) {
      if (lines[at]!.trim() === line) return 'present';
      throw new P2vError('USAGE', `this key is already in ${file} (line ${at + 1}) with other options`, {
        hint: 'sshd uses the first line with a key: edit or remove that line, then run this again',
      });
    }
    if ((st.mode & 0o022) !== 0) await fh.chmod(KEYS_MODE); // sshd's StrictModes would ignore the file
    await fh.writeFile((text.length > 0 && !text.endsWith('\n') ? '\n' : '') + line + '\n');
    return 'added';
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------
// The account.

async function lookupAccount(name: string): Promise<Account | null> {
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
function checkAccount(account: Account): void {
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

async function ensureAccount(name: string, logger: Logger): Promise<Account & { created: boolean }> {
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

// ---------------------------------------------------------------------------

export async function setupStager(o: StagerSetupOptions): Promise<StagerSetupResult> {
  const { logger } = o;
  if (process.getuid?.() !== 0) {
    throw new P2vError('USAGE', '--setup-stager must run as root (it creates a user, directories and wrappers)');
  }
  if (!USER_NAME.test(o.user)) {
    throw new P2vError('USAGE', `invalid user name "${o.user}"`, {
      hint: 'lower-case letters, digits, _ and -, e.g. p2v',
    });
  }
  const staging = checkPath(o.staging, '--staging');
  const exports = checkPath(o.exports ?? join(staging, 'exports'), '--exports');
  const binDir = checkPath(o.binDir, '--bin-dir');
  const diskSize = checkDiskSize(o.diskSize);
  const checkout = await step(`reading ${o.checkout}`, () => realpath(o.checkout));
  const node = await step(`reading ${o.node}`, () => realpath(o.node));
  if (/[\u0000-\u001f\u007f]/.test(checkout + node)) {
    throw new P2vError('USAGE', `the checkout path ${checkout} has control characters`, { hint: 'move it' });
  }
  const key =
    o.keyFile === undefined
      ? undefined
      : parsePublicKey(
          await step(`reading ${o.keyFile}`, async () => {
            const fh = await open(o.keyFile!, 'r');
            try {
              const st = await fh.stat();
              if (!st.isFile() || st.size > MAX_KEY_FILE) throw new P2vError('USAGE', `${o.keyFile} is not a key file`);
              return (await fh.readFile()).toString('utf8');
            } finally {
              await fh.close();
            }
          }),
          o.keyFile,
        );
  const existing = await lookupAccount(o.user);
  if (existing) checkAccount(existing);
  await checkCheckoutUsable(checkout, node, o.user, existing ?? ANYONE);

  await ensureBinDir(binDir);
  const account = await ensureAccount(o.user, logger);

  const wrappers: string[] = [];
  for (const tool of TOOLS) {
    const how = await installWrapper(binDir, tool, wrapperText(tool, node, checkout));
    wrappers.push(join(binDir, tool));
    logger.debug(`${join(binDir, tool)}: ${how}`);
  }
  logger.info(`${binDir}: ${TOOLS.join(', ')} (running ${checkout} with ${node})`);
  // The proof that counts: the account itself runs the wrapper, as sshd will.
  const probe = await run('runuser', ['-u', account.name, '--', join(binDir, 'p2v-import'), '--help'], {
    reject: false,
    cwd: '/',
  });
  if (probe.exitCode !== 0 || !String(probe.stdout).includes('p2v-import')) {
    throw new P2vError('IO', `user ${account.name} cannot run ${join(binDir, 'p2v-import')}`, {
      stderrTail: String(probe.stderr).split('\n').slice(-6).join('\n'),
      hint: `make the checkout readable by every user (chmod -R a+rX ${checkout}) and run this again`,
    });
  }
  if (!SSHD_DEFAULT_PATH.split(':').includes(binDir)) {
    logger.warn(
      `${binDir} is not on the PATH sshd gives a session (${SSHD_DEFAULT_PATH}): ` +
        `add "SetEnv PATH=${binDir}:${SSHD_DEFAULT_PATH}" to sshd_config, or leave --bin-dir at ${DEFAULT_BIN_DIR}`,
    );
  }

  for (const [dir, what] of [
    [staging, 'staging'],
    [exports, 'exports'],
  ] as const) {
    const how = await ensureAccountDir(dir, account, STAGING_MODE);
    logger.info(`${what} ${dir}: ${how}, owner ${account.name}, mode ${octal(STAGING_MODE)}`);
  }
  // An account made earlier without --create-home: its home is made for it, not left to root.
  if (!(await step(`checking ${account.home}`, () => lstatOrNull(account.home)))) {
    await ensureAccountDir(account.home, account, 0o750);
  }
  const sshDir = join(account.home, '.ssh');
  await ensureAccountDir(sshDir, account, SSH_DIR_MODE);
  const authorizedKeys = join(sshDir, 'authorized_keys');

  const command = forcedCommand(staging, exports, diskSize);
  const line = authorizedKeysLine(command, key && [key.type, key.blob, key.comment].filter(Boolean).join(' '));
  let keyState: 'added' | 'present' | undefined;
  if (key) {
    keyState = await step(`adding the key to ${authorizedKeys}`, () =>
      addAuthorizedKey(authorizedKeys, line, key, account),
    );
    logger.info(
      `${authorizedKeys}: key ${key.comment || key.type} ${keyState === 'added' ? 'added' : 'already there'}`,
    );
  } else {
    logger.info(`add this line to ${authorizedKeys}, with the owner's public key in place of "${KEY_PLACEHOLDER}":`);
  }
  return { user: account, wrappers, staging, exports, authorizedKeys, line, key: keyState };
}

// ---------------------------------------------------------------------------
// The command line: `p2v-import --setup-stager …` (dispatched from cli.ts).

interface SetupCliOptions {
  user: string;
  staging: string;
  exports?: string;
  diskSize?: string;
  binDir?: string;
  key?: string;
  verbose?: boolean;
  quiet?: boolean;
}

export function buildSetupCommand(): Command {
  return new Command('p2v-import --setup-stager')
    .description(
      'As root, set this host up as a stager: put the tools on PATH, create the\n' +
        'account and its directories, and print its restricted authorized_keys line.',
    )
    .requiredOption('--setup-stager', 'this mode')
    .requiredOption('--user <name>', 'account the owners log into, created if missing')
    .requiredOption('--staging <dir>', 'staging directory of that account, e.g. /srv/p2v')
    .option('--exports <dir>', 'its Ganeti export directory (<staging>/exports)')
    .option('--disk-size <max>', `largest disk the key accepts (${DEFAULT_DISK_SIZE})`)
    .option('--bin-dir <dir>', `where the tools go, on sshd's PATH (${DEFAULT_BIN_DIR})`)
    .option('--key <file.pub>', "add this owner's public key to authorized_keys")
    .option('-v, --verbose', 'more messages')
    .option('-q, --quiet', 'errors only')
    .addOption(new Option('--debug', 'stack traces on errors').hideHelp())
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: () => undefined })
    .allowExcessArguments(false);
}

export async function setupStagerMain(argv: string[]): Promise<void> {
  await runCli('p2v-import', async () => {
    const cmd = buildSetupCommand();
    try {
      cmd.parse(argv);
    } catch (e) {
      const err = e as { code?: string; message?: string };
      if (err.code === 'commander.helpDisplayed') return;
      throw new P2vError('USAGE', (err.message ?? String(e)).replace(/^error: /, ''), {
        hint: 'see p2v-import --setup-stager --help',
      });
    }
    const o = cmd.opts<SetupCliOptions>();
    const logger = createLogger({ tool: 'p2v-import', verbose: o.verbose, quiet: o.quiet });
    const result = await setupStager({
      user: o.user,
      staging: o.staging,
      exports: o.exports,
      diskSize: o.diskSize ?? DEFAULT_DISK_SIZE,
      binDir: o.binDir ?? DEFAULT_BIN_DIR,
      keyFile: o.key,
      checkout: thisCheckout(),
      node: process.execPath,
      logger,
    });
    process.stdout.write(result.line + '\n');
  });
}
