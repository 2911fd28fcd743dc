/**
 * Creating a file p2v-export writes (the -o partial OVA, the --report JSON)
 * the one safe way: O_CREAT|O_EXCL, so never through a symlink and never over
 * another file; with --force an existing entry is unlinked first (the link
 * itself if it is one, never what it points to). Errnos become one-line
 * errors naming the path and the option.
 */
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { P2vError } from '../../lib/errors.js';

export function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

export async function createExclusive(
  path: string,
  how: { force?: boolean; exists: () => P2vError; option: string },
): Promise<FileHandle> {
  const create = () => open(path, 'wx', 0o644);
  try {
    return await create();
  } catch (e) {
    if (errnoOf(e) === 'EEXIST' && how.force) {
      await unlink(path).catch((e2: unknown) => {
        throw fileError(path, e2, how.option);
      });
      return await create().catch((e2: unknown) => {
        throw fileError(path, e2, how.option);
      });
    }
    if (errnoOf(e) === 'EEXIST') throw how.exists();
    throw fileError(path, e, how.option);
  }
}

export function fileError(path: string, e: unknown, option: string): P2vError {
  const code = errnoOf(e);
  const why =
    code === 'ENOENT'
      ? 'its directory does not exist'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EROFS'
          ? 'the filesystem is read-only'
          : code === 'ENOTDIR'
            ? 'a part of its directory path is not a directory'
            : code === 'ENOSPC'
              ? 'no space left'
              : code === 'EISDIR'
                ? 'it is a directory'
                : ((e as Error).message ?? String(e));
  return new P2vError('IO', `cannot create ${path}: ${why}`, {
    hint: `choose a writable place for ${option}`,
    cause: e,
  });
}
