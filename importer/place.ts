/**
 * Putting finished files where an output wants them, never half-written and
 * never over something that exists: build under a temporary name in the
 * destination directory, then `link()` it to the final name (which fails
 * instead of replacing) and drop the temporary name. A staged raw disk gets
 * to its destination by hard link when on the same filesystem (instant, and
 * a regular file physically in that directory, as Ganeti requires) or by a
 * sparse copy otherwise.
 */
import { link, mkdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { onExit } from '../lib/exit-actions.js';
import { copyRawInto, createRawFileSink } from './disk-sink.js';

function exists(path: string): P2vError {
  return new P2vError('IO', `${path} already exists`, { hint: 'remove it, or choose another name with --name' });
}

/** A temporary path next to `final`, removed at exit unless placed. */
export function tempNameFor(final: string, id: string): { path: string; forget: () => void } {
  const path = join(dirname(final), `.${basename(final)}.p2v-${id}.tmp`);
  const h = onExit(`remove ${path}`, () => rm(path, { recursive: true, force: true }));
  return { path, forget: () => h.cancel() };
}

/** Move a finished file from its temporary name to `final`, refusing to replace. */
export async function placeFile(tmp: string, final: string): Promise<void> {
  try {
    await link(tmp, final);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw exists(final);
    throw e;
  }
  await unlink(tmp);
}

/** Move a finished directory into place; a non-empty `final` is never replaced. */
export async function placeDir(tmp: string, final: string): Promise<void> {
  if (
    await stat(final).then(
      () => true,
      () => false,
    )
  )
    throw exists(final);
  try {
    await rename(tmp, final);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') throw exists(final);
    throw e;
  }
}

/** A staged raw disk at `dst` (must not exist): hard link, or sparse copy across filesystems. */
export async function placeRawDisk(src: string, capacity: number, dst: string): Promise<void> {
  try {
    await link(src, dst);
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw exists(dst);
    if (code !== 'EXDEV' && code !== 'EPERM') throw e;
  }
  await copyRawInto(src, capacity, await createRawFileSink(dst, capacity));
}

export async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw new P2vError('IO', `cannot create ${dir}: ${(e as Error).message}`, { cause: e });
  }
}
