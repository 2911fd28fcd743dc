/**
 * The staging directory. Each run works in `<staging>/<id>.partial/` (id =
 * UTC timestamp + random, created with mkdir's exclusive semantics, so
 * concurrent imports never share one) and renames it to `<staging>/<id>/`
 * only once everything is decoded and verified: a directory without the
 * `.partial` suffix is always complete. A failed or interrupted run removes
 * its `.partial` dir (unless kept for debugging) through the exit-action
 * registry, so SIGINT/SIGTERM clean up too; one that dies harder (SIGKILL, a
 * crash, a reboot) leaves it to the next run's start-up cleaning, which goes
 * by the `owner` file written here (owner.ts, housekeeping.ts).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { onExit, type ExitHandle } from '../lib/exit-actions.js';
import { claimOwner, releaseOwner } from './owner.js';

export const PARTIAL_SUFFIX = '.partial';
/** Written next to the disks: what was received, for people and later tools (--list, --from-staged). */
export const MACHINE_FILE = 'machine.json';
/** In a partial kept by --keep-partial: start-up cleaning leaves it for the admin. */
export const KEPT_FILE = 'kept';
/** Bytes a live import expects to stage, so concurrent runs count it against --max-staging. */
export const RESERVED_FILE = 'reserved';

/** An import id as newImportId makes it; nothing else in the staging dir is ours. */
export const IMPORT_ID = /^\d{8}T\d{6}Z-[0-9a-f]{8}$/;

export interface StagingArea {
  readonly id: string;
  /** Where work happens now: `<staging>/<id>.partial` until committed, then `<staging>/<id>`. */
  readonly dir: string;
  readonly committed: boolean;
  /** Rename `<id>.partial` to `<id>`: the import is complete and verified. */
  commit(): Promise<string>;
  /** Remove the directory (partial or committed) now. */
  remove(): Promise<void>;
  /** Leave the directory in place whatever happens next. */
  keep(): void;
  /** Record the bytes this import expects to stage (for other runs' --max-staging). */
  reserve(bytes: number): Promise<void>;
}

/** A unique, sortable id: 20261122T031718Z-1a2b3c4d. */
export function newImportId(now = new Date()): string {
  const ts = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${ts}-${randomBytes(4).toString('hex')}`;
}

export async function openStagingArea(staging: string, opts: { keepPartial?: boolean } = {}): Promise<StagingArea> {
  const root = resolve(staging);
  try {
    await mkdir(root, { recursive: true, mode: 0o700 });
    if (!(await stat(root)).isDirectory()) throw new Error('not a directory');
  } catch (e) {
    throw new P2vError('IO', `cannot use staging directory ${root}: ${(e as Error).message}`, {
      hint: 'create it (on a filesystem with room for the disks) or give another with --staging',
      cause: e,
    });
  }
  let id = '';
  let dir = '';
  for (let attempt = 0; ; attempt++) {
    id = newImportId();
    dir = join(root, id + PARTIAL_SUFFIX);
    try {
      await mkdir(dir, { mode: 0o700 });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 5) throw e;
    }
  }
  try {
    await claimOwner(dir);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  let committed = false;
  let kept = false;
  const handle: ExitHandle = onExit(`remove ${dir}`, async () => {
    if (kept || (opts.keepPartial && !committed)) {
      if (!committed) {
        await writeFile(join(dir, KEPT_FILE), '', { flag: 'wx' }).catch(() => undefined);
        process.stderr.write(`p2v-import: kept partial import in ${area.dir}\n`);
      }
      await releaseOwner(area.dir);
      return;
    }
    await rm(area.dir, { recursive: true, force: true });
  });
  const area: StagingArea = {
    id,
    get dir() {
      return committed ? join(root, id) : dir;
    },
    get committed() {
      return committed;
    },
    async commit() {
      // Only a running import announces what it will take; a complete one counts by what it holds.
      await rm(join(dir, RESERVED_FILE), { force: true });
      await rename(dir, join(root, id));
      committed = true;
      return join(root, id);
    },
    async remove() {
      kept = false;
      await handle.run();
    },
    keep() {
      kept = true;
      handle.cancel();
      // The copy outlives this process: it is no one's work any more.
      onExit(`release ${join(root, id)}`, () => releaseOwner(area.dir));
    },
    async reserve(bytes: number) {
      await writeFile(join(area.dir, RESERVED_FILE), `${bytes}\n`, { flag: 'wx', mode: 0o600 });
    },
  };
  return area;
}
