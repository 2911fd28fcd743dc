/**
 * Putting outputs in place without racing anyone who can write to the
 * output directory. An output directory is often shared (Ganeti's export
 * dir, an images dir), and p2v-import may run as root: a name it is about to
 * write that someone else can predict or replace (a temporary name next to
 * the output, the output itself, the directory's own name) would let them
 * point our writes at any file on the host. So:
 *
 *  - Each configured output directory is checked (lstat: a real directory,
 *    no symbolic link) and held open from start-up (O_DIRECTORY|O_NOFOLLOW);
 *    every name in it is reached through that handle (/proc/self/fd/N/name,
 *    which resolves to the directory we opened whatever is renamed or
 *    planted later), and before placing, its path must still lead to the
 *    same directory.
 *  - Outputs are built in a private work directory made there exclusively
 *    (mkdtemp: a random name, mode 0700, ours) and also reached through its
 *    own handle; files in it are created O_CREAT|O_EXCL|O_NOFOLLOW, and
 *    qemu-img writes only there. Being in the destination directory, the
 *    finished output moves by rename or hard link on one filesystem, and
 *    Ganeti gets a regular file physically in its directory.
 *  - The final name must not exist in any form (lstat, so a dangling
 *    symbolic link counts); a file is put there with link() (which fails
 *    rather than replace anything, and never follows a link), a directory
 *    with rename() (which fails on a link or a non-empty directory).
 *  - The work directory is removed on every way out, signals included
 *    (lib/exit-actions), so nothing half-built ever carries a final name.
 */
import { constants } from 'node:fs';
import {
  link,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  type FileHandle,
} from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { onExit } from '../lib/exit-actions.js';
import { copyRawInto, createRawFileSink, CREATE_NEW } from './disk-sink.js';
import { fsError, fsStep, isErrno, withSpaceFigures } from './fs-errors.js';

const OPEN_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** Prefix of the private work directories (hidden, never an output's name). */
export const WORK_PREFIX = '.p2v-';

/** A configured output directory, held open since start-up. */
export interface OutputPlace {
  /** The directory as configured (absolute), for messages. */
  readonly dir: string;
  /** A path to `name` in it that resolves through the open handle. */
  at(name: string): string;
  /** Refuse unless `dir` still is the directory opened at start-up (not replaced, not a link). */
  verify(): Promise<void>;
  /** Flush the directory entries placed in it. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** A private work directory inside an output place. */
export interface WorkDir {
  /** `<place>/.p2v-XXXXXX`, for messages. */
  readonly path: string;
  /** The open handle's descriptor, to hand to a program (qemu-img) as its only way in. */
  readonly fd: number;
  /** A path to `name` in it that resolves through its open handle. */
  at(name: string): string;
  /** Remove it and everything in it (also runs at exit unless done before). */
  remove(): Promise<void>;
}

export function symlinkRefused(path: string, what = ''): P2vError {
  return new P2vError('IO', `${what}${path} is a symbolic link; p2v-import never writes through one`, {
    hint: 'remove the link (someone may be redirecting the output), or give the real path',
  });
}

export function nameTaken(path: string): P2vError {
  return new P2vError('IO', `${path} already exists`, { hint: 'remove it, or choose another name with --name' });
}

function replaced(dir: string): P2vError {
  return new P2vError('IO', `output directory ${dir} was replaced while p2v-import ran`, {
    hint: 'someone renamed or replaced it during the import; check the output place and run the outputs again',
  });
}

/** The refusal for a configured output directory that is not a plain directory, or undefined if it is one. */
export function checkPlaceStat(
  dir: string,
  st: { isSymbolicLink(): boolean; isDirectory(): boolean },
): P2vError | undefined {
  if (st.isSymbolicLink()) return symlinkRefused(dir, 'output directory ');
  if (!st.isDirectory())
    return new P2vError('IO', `output directory ${dir} is not a directory`, {
      hint: 'give a directory (p2v-import creates a missing one)',
    });
  return undefined;
}

function handlePath(fh: FileHandle, name: string): string {
  return name ? `/proc/self/fd/${fh.fd}/${name}` : `/proc/self/fd/${fh.fd}`;
}

/**
 * mkdir -p, one level at a time: a recursive mkdir reports a read-only
 * parent as ENOENT, and the admin must hear the real cause.
 */
async function makeDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { mode: 0o755 });
  } catch (e) {
    if (isErrno(e) && e.code === 'EEXIST') return;
    if (!isErrno(e) || e.code !== 'ENOENT' || dirname(dir) === dir) throw fsError(e, { path: dir, action: 'create' });
    await makeDir(dirname(dir));
    await mkdir(dir, { mode: 0o755 }).catch((e2: unknown) => {
      if (!isErrno(e2) || e2.code !== 'EEXIST') throw fsError(e2, { path: dir, action: 'create' });
    });
  }
}

/** Create `dir` if missing, check it is a real directory and hold it open. */
export async function openOutputPlace(dir: string): Promise<OutputPlace> {
  await makeDir(dir);
  const st = await fsStep({ path: dir, action: 'look at' }, () => lstat(dir));
  const bad = checkPlaceStat(dir, st);
  if (bad) throw bad;
  let fh: FileHandle;
  try {
    fh = await open(dir, OPEN_DIR);
  } catch (e) {
    if (isErrno(e) && e.code === 'ELOOP') throw symlinkRefused(dir, 'output directory ');
    throw fsError(e, { path: dir, action: 'open' });
  }
  const held = await fh.stat();
  const sameAs = (s: { dev: number; ino: number }) => s.dev === held.dev && s.ino === held.ino;
  if (!sameAs(st)) {
    await fh.close();
    throw replaced(dir);
  }
  // Every later name goes through /proc/self/fd: without /proc it would not be what we opened.
  if (!(await stat(handlePath(fh, '')).then(sameAs, () => false))) {
    await fh.close();
    throw new P2vError('IO', `cannot reach ${dir} through /proc/self/fd`, {
      hint: 'p2v-import needs /proc mounted to write outputs safely (mount -t proc proc /proc)',
    });
  }
  let closed = false;
  return {
    dir,
    at: (name) => handlePath(fh, name),
    async verify() {
      const now = await lstat(dir).catch((e: unknown) => {
        throw fsError(e, { path: dir, action: 'look at' });
      });
      const refused = checkPlaceStat(dir, now);
      if (refused) throw refused;
      if (!sameAs(now)) throw replaced(dir);
    },
    async sync() {
      await fh.sync().catch(() => undefined);
    },
    async close() {
      if (closed) return;
      closed = true;
      await fh.close();
    },
  };
}

/** Refuse if `name` exists in `place` in any form (a dangling symbolic link counts). */
export async function checkNameFree(place: OutputPlace, name: string): Promise<void> {
  const path = join(place.dir, name);
  let st;
  try {
    st = await lstat(place.at(name));
  } catch (e) {
    if (isErrno(e) && e.code === 'ENOENT') return;
    throw fsError(e, { path, action: 'look at' });
  }
  throw st.isSymbolicLink() ? symlinkRefused(path) : nameTaken(path);
}

/** Tries at a fresh work directory when the one just made was swapped before we could open it. */
const WORK_DIR_TRIES = 5;

/**
 * A new private work directory in `place`, removed at exit unless removed
 * before. Between mkdtemp and opening it, someone who can write to the place
 * can swap the new name; the handle we open must then be a directory of ours
 * with mode 0700, or we try again with a fresh name (and never touch what
 * was swapped in).
 */
export async function openWorkDir(place: OutputPlace): Promise<WorkDir> {
  for (let attempt = 1; ; attempt++) {
    const work = await tryWorkDir(place);
    if (typeof work !== 'string') return work;
    if (attempt >= WORK_DIR_TRIES)
      throw new P2vError('IO', `work directory ${work} was replaced before p2v-import could use it`, {
        hint: `someone is tampering with ${place.dir}; check who can write to it`,
      });
  }
}

/** One try: the work dir, or its path when it was swapped before we held it. */
async function tryWorkDir(place: OutputPlace): Promise<WorkDir | string> {
  // The exit action is registered before the directory exists: a signal that lands after mkdtemp made it but
  // before we learn its name (a busy machine widens that gap) still finds and removes it.
  const making = mkdtemp(place.at(WORK_PREFIX));
  let made: string | undefined;
  let fh: FileHandle | undefined;
  const removeAll = async () => {
    made ??= await making.catch(() => undefined);
    if (made === undefined) return;
    const name = basename(made);
    if (!fh) {
      // Interrupted before we held it: the name, if it still is an empty directory of ours
      // (rmdir removes nothing else and follows no link).
      const st = await lstat(made).catch(() => undefined);
      if (st?.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o777) === 0o700)
        await rmdir(made).catch(() => undefined);
      return;
    }
    for (const entry of await readdir(handlePath(fh, '')).catch(() => [] as string[]))
      await rm(handlePath(fh, entry), { recursive: true, force: true });
    // The name, only if it still is our directory (it may have been renamed and replaced).
    const st = await lstat(place.at(name)).catch(() => undefined);
    const held = await fh.stat().catch(() => undefined);
    if (st && held && st.isDirectory() && st.ino === held.ino && st.dev === held.dev)
      await rmdir(place.at(name)).catch(() => undefined);
    await fh.close().catch(() => undefined);
    fh = undefined;
  };
  const handle = onExit(`remove the work directory in ${place.dir}`, removeAll);
  try {
    made = await fsStep({ path: join(place.dir, `${WORK_PREFIX}XXXXXX`), action: 'create' }, () => making);
  } catch (e) {
    handle.cancel();
    throw e;
  }
  const name = basename(made);
  const path = join(place.dir, name);
  let candidate: FileHandle;
  try {
    candidate = await open(made, OPEN_DIR);
  } catch (e) {
    handle.cancel();
    // A link or a file where our directory was: swapped.
    if (isErrno(e) && (e.code === 'ELOOP' || e.code === 'ENOTDIR' || e.code === 'ENOENT')) return path;
    throw fsError(e, { path, action: 'open' });
  }
  const st = await candidate.stat();
  if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o777) !== 0o700) {
    // Not ours: close it and leave it alone (emptying it would destroy someone else's files).
    handle.cancel();
    await candidate.close();
    return path;
  }
  fh = candidate;
  return {
    path,
    fd: candidate.fd,
    at: (n: string) => handlePath(candidate, n),
    remove: () => handle.run(),
  };
}

/**
 * Build outputs in a fresh work directory of `place`: `body` gets it, the
 * directory is removed afterwards whatever happens, and a full filesystem is
 * reported with the space figures as they are once our part is gone.
 */
export async function withWorkDir<T>(
  place: OutputPlace,
  needed: number | undefined,
  body: (work: WorkDir) => Promise<T>,
): Promise<T> {
  const work = await openWorkDir(place);
  try {
    const result = await body(work);
    await work.remove();
    return result;
  } catch (e) {
    await work.remove();
    throw await withSpaceFigures(e, { needed });
  }
}

/** A new file with `data` (created exclusively, never through a link). */
export async function writeNewFile(
  path: string,
  shown: { path: string; place: string },
  data: string | Buffer,
  mode = 0o644,
): Promise<void> {
  await fsStep({ ...shown, action: 'write' }, async () => {
    const fh = await open(path, CREATE_NEW, mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
}

async function regularIn(work: WorkDir, name: string, dir: boolean): Promise<{ dev: number; ino: number }> {
  const st = await fsStep({ path: join(work.path, name), action: 'look at' }, () => lstat(work.at(name)));
  if (dir ? !st.isDirectory() : !st.isFile())
    throw new P2vError('IO', `${join(work.path, name)} is not the ${dir ? 'directory' : 'file'} p2v-import built`, {
      hint: 'someone is tampering with the output directory; check who can write to it',
    });
  return st;
}

/** A file put in place: its path, and its identity for unplace. */
export interface PlacedFile {
  path: string;
  dev: number;
  ino: number;
}

/** Put the finished file `work/name` at `place/final`; never replaces anything. */
export async function placeFile(work: WorkDir, name: string, place: OutputPlace, final: string): Promise<PlacedFile> {
  const { dev, ino } = await regularIn(work, name, false);
  await place.verify();
  await checkNameFree(place, final);
  const shown = join(place.dir, final);
  try {
    await link(work.at(name), place.at(final));
  } catch (e) {
    if (isErrno(e) && e.code === 'EEXIST') await checkNameFree(place, final);
    throw fsError(e, { path: shown, action: 'put in place' });
  }
  await fsStep({ path: join(work.path, name), action: 'remove' }, () => unlink(work.at(name)));
  return { path: shown, dev, ino };
}

/** Put the finished directory `work/name` at `place/final`; never replaces anything. Returns the final path. */
export async function placeDir(work: WorkDir, name: string, place: OutputPlace, final: string): Promise<string> {
  await regularIn(work, name, true);
  await place.verify();
  await checkNameFree(place, final);
  const shown = join(place.dir, final);
  try {
    // rename() fails on a link or a non-empty directory; an empty directory planted since the check is replaced, harmlessly.
    await rename(work.at(name), place.at(final));
  } catch (e) {
    if (isErrno(e) && ['EEXIST', 'ENOTEMPTY', 'ENOTDIR', 'EISDIR'].includes(e.code!)) await checkNameFree(place, final);
    throw fsError(e, { path: shown, action: 'put in place' });
  }
  return shown;
}

/** Undo a placeFile of a multi-file output whose later file failed, if the name still is ours. */
export async function unplace(place: OutputPlace, ours: PlacedFile): Promise<void> {
  const final = basename(ours.path);
  const st = await lstat(place.at(final)).catch(() => undefined);
  if (st && st.isFile() && st.ino === ours.ino && st.dev === ours.dev)
    await unlink(place.at(final)).catch(() => undefined);
}

/**
 * A staged raw disk at `dst` (a new name in a work directory): a hard link
 * when on the same filesystem (instant, no space), a sparse copy otherwise.
 * `shown` names it for messages: the output's path and its output directory.
 */
export async function placeRawDisk(
  src: string,
  capacity: number,
  dst: string,
  shown: { path: string; place: string },
): Promise<void> {
  try {
    await link(src, dst);
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM') throw fsError(e, { ...shown, action: 'create' });
  }
  await fsStep({ ...shown, action: 'write' }, async () =>
    copyRawInto(src, capacity, await createRawFileSink(dst, capacity)),
  );
}
