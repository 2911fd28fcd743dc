/**
 * Filesystem errors in words. A full, read-only, missing or hijacked place
 * makes Node throw a bare errno (`ENOSPC: no space left on device, write`),
 * which would reach the admin as `internal error: …` with no path and no way
 * forward. Every fs call of the importer goes through here instead: the
 * errno becomes a one-line P2vError that names the path (the real one, not
 * the /proc/self/fd name we may have used to reach it), says what happened
 * and, in the hint, what to do. For a full filesystem it gives the numbers
 * (needed, when the caller knows, and free, from statfs).
 */
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { formatBytes } from '../lib/units.js';

export interface FsErrorContext {
  /** The file or directory the call was about, as the admin knows it. */
  path: string;
  /** What we were doing to it, a verb phrase: "create", "write", "put in place". */
  action: string;
  /** The directory whose filesystem is meant (full, read-only); default: the path's directory. */
  place?: string;
  /** Bytes the step needed, when known (shown for a full filesystem). */
  needed?: number;
  /** Bytes free on `place`, when measured (fsErrorMeasured fills it in). */
  free?: number;
  /** Replaces the default advice. */
  hint?: string;
}

export function isErrno(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string';
}

/** Codes that mean "the filesystem is full" in one way or another. */
const FULL = new Set(['ENOSPC', 'EDQUOT']);

/** The strerror part of a Node errno message ("no space left on device"). */
function strerror(e: NodeJS.ErrnoException): string {
  const m = /^[A-Z0-9_]+: (.*?)(?:, [a-z_]+(?: '.*)?)?$/.exec(e.message);
  return m?.[1] ?? e.message;
}

function space(ctx: FsErrorContext): string {
  const parts: string[] = [];
  if (ctx.needed !== undefined) parts.push(`${formatBytes(ctx.needed)} needed`);
  if (ctx.free !== undefined) parts.push(`${formatBytes(ctx.free)} free`);
  return parts.length ? `: ${parts.join(', ')}` : '';
}

/**
 * The P2vError for a failed fs call. A P2vError passes through unchanged; a
 * value that is no errno at all is returned as it is, for the caller to
 * rethrow (a bug stays a bug).
 */
export function fsError(e: unknown, ctx: FsErrorContext): unknown {
  if (e instanceof P2vError || !isErrno(e)) return e;
  const err = explain(e, ctx);
  made.set(err, { errno: e, ctx });
  return err;
}

/** What each P2vError made here came from, so it can be re-said with the free space measured later. */
const made = new WeakMap<P2vError, { errno: NodeJS.ErrnoException; ctx: FsErrorContext }>();

function explain(e: NodeJS.ErrnoException, ctx: FsErrorContext): P2vError {
  const { path, action } = ctx;
  const place = ctx.place ?? dirname(path);
  const make = (message: string, hint: string) => new P2vError('IO', message, { hint: ctx.hint ?? hint, cause: e });
  switch (e.code) {
    case 'ENOSPC':
      return make(`no space left on ${place}${space(ctx)}`, `free space on ${place}, or choose another place`);
    case 'EDQUOT':
      return make(
        `disk quota exceeded on ${place}${space(ctx)}`,
        `raise the quota of the user p2v-import runs as, free space, or choose another place`,
      );
    case 'EFBIG':
      return make(
        `cannot ${action} ${path}: the file is too large for ${place}`,
        'the filesystem (or a file size limit, ulimit -f) caps files below the disk size; choose another place',
      );
    case 'EROFS':
      return make(
        `cannot ${action} ${path}: ${place === path ? 'it' : place} is on a read-only filesystem`,
        'remount it read-write, or choose another place',
      );
    case 'EACCES':
    case 'EPERM':
      return make(
        `cannot ${action} ${path}: permission denied`,
        `let the user p2v-import runs as (uid ${process.getuid?.() ?? '?'}) write to ${place}, or choose another place`,
      );
    case 'ENOENT':
      return make(
        `cannot ${action} ${path}: it or a directory on the way to it does not exist`,
        'create it, or check the path (it may have been removed while p2v-import ran)',
      );
    case 'ENOTDIR':
      return make(
        `cannot ${action} ${path}: a part of the path is not a directory`,
        'something else (a file or a symbolic link) stands where a directory must be; check the path',
      );
    case 'ELOOP':
      return make(
        `${path} is a symbolic link; p2v-import never writes through one`,
        'remove the link (someone may be redirecting the output), or give the real path',
      );
    case 'EEXIST':
    case 'ENOTEMPTY':
      return make(`${path} already exists`, 'remove it, or choose another name with --name');
    case 'EISDIR':
      return make(`cannot ${action} ${path}: it is a directory`, 'remove it, or choose another name');
    case 'EXDEV':
      return make(
        `cannot ${action} ${path}: it is on another filesystem`,
        'keep the work and the output on one filesystem',
      );
    case 'EIO':
      return make(
        `cannot ${action} ${path}: input/output error`,
        `the storage under ${place} is failing; see the kernel log (dmesg)`,
      );
    case 'EMFILE':
    case 'ENFILE':
      return make(`cannot ${action} ${path}: too many open files`, 'raise the open file limit (ulimit -n)');
    case 'ENAMETOOLONG':
      return make(`cannot ${action} ${path}: the name is too long`, 'choose a shorter path or --name');
    default:
      return make(
        `cannot ${action} ${path}: ${strerror(e)} (${e.code})`,
        `check ${place} (free space, permissions, the filesystem)`,
      );
  }
}

/**
 * A "no space" error from fsError said again with the free space measured
 * now (call it after removing what the failed step left, so the numbers are
 * the ones the admin will find) and `needed` when the caller knows it better.
 * Any other error is returned as it is.
 */
export async function withSpaceFigures(e: unknown, extra: { needed?: number } = {}): Promise<unknown> {
  const origin = e instanceof P2vError ? made.get(e) : undefined;
  if (!origin || !FULL.has(origin.errno.code!)) return e;
  const place = origin.ctx.place ?? dirname(origin.ctx.path);
  const free = await statfs(place).then(
    (s) => s.bavail * s.bsize,
    () => undefined,
  );
  return fsError(origin.errno, { ...origin.ctx, place, free, needed: origin.ctx.needed ?? extra.needed });
}

/** fsError, with the free space measured now for a full filesystem. */
export async function fsErrorMeasured(e: unknown, ctx: FsErrorContext): Promise<unknown> {
  return withSpaceFigures(fsError(e, ctx));
}

/** Run one fs step; an errno comes out as a P2vError in words (space figures are left to the caller). */
export async function fsStep<T>(ctx: FsErrorContext, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    throw fsError(e, ctx);
  }
}

/**
 * qemu-img reports errno text on stderr, not a code: the ones a place can
 * cause are turned back into an errno so they read like every other.
 */
export function errnoFromText(text: string | undefined): NodeJS.ErrnoException | undefined {
  if (!text) return undefined;
  const table: [RegExp, string][] = [
    [/No space left on device/i, 'ENOSPC'],
    [/Disk quota exceeded/i, 'EDQUOT'],
    [/File too large/i, 'EFBIG'],
    [/Read-only file system/i, 'EROFS'],
    [/Permission denied/i, 'EACCES'],
    [/Too many levels of symbolic links/i, 'ELOOP'],
    [/Input\/output error/i, 'EIO'],
  ];
  for (const [re, code] of table) {
    if (re.test(text)) {
      const e: NodeJS.ErrnoException = new Error(`${code}: ${text.split('\n').pop()}`);
      e.code = code;
      return e;
    }
  }
  return undefined;
}
