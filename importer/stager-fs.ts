/**
 * The filesystem steps of `--setup-stager`, none of them following a symlink
 * it did not make: every path component is lstat'ed and refused if it is a
 * symlink, directories handed to the account are opened with O_NOFOLLOW and
 * checked through /proc/self/fd before their owner changes. Also who may
 * reach what (mode bits against an account's uid and groups), which the
 * checks before any change use too.
 */
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { P2vError } from '../lib/errors.js';
import type { Account } from './stager-account.js';

export type Access = 4 | 2 | 1; // r, w, x

export function allows(st: Stats, who: { uid: number; gids: number[] }, bit: Access): boolean {
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

export const octal = (mode: number) => '0' + (mode & 0o7777).toString(8);
/** Someone who is not the owner and in no special group: a fresh system account. */
export const ANYONE = { uid: -1, gids: [] as number[] };

/** Run one filesystem step; an errno becomes a one-line error naming the path. */
export async function step<T>(what: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof P2vError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new P2vError('IO', `${what}: ${err.code ?? err.message}`, { cause: e });
  }
}

export async function lstatOrNull(p: string): Promise<Stats | null> {
  try {
    return await lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export function refuseSymlink(p: string): never {
  throw new P2vError('USAGE', `${p} is a symlink`, {
    hint: `give the real path (realpath ${p}); --setup-stager never follows a symlink it did not make`,
  });
}

/**
 * Every directory above `path`: a real directory (created root-owned 0755
 * when missing), never a symlink, searchable by `who`.
 */
export async function prepareParents(path: string, who: { uid: number; gids: number[] }, user: string): Promise<void> {
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
export async function openNoFollow(path: string, flags: number, mode?: number): Promise<FileHandle> {
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
export async function ensureAccountDir(path: string, account: Account, mode: number): Promise<'created' | 'kept'> {
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
