/**
 * Housekeeping of the staging directory: what is in it (`--list`), taking a
 * staged copy away (`--remove ID`), clearing the `.partial` directories of
 * imports that died (at every import's start-up) and the total it holds
 * (`--max-staging`).
 *
 * Only names shaped like an import id (`20261122T031718Z-1a2b3c4d`, with or
 * without `.partial`) are ever touched, never through a symlink, and never
 * while the import that owns them may still run (owner.ts): a concurrent
 * import is never removed. These are staging-host commands; the forced
 * command refuses them from a client (forced-command.ts).
 */
import { lstat, open, readdir, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join, resolve } from 'node:path';
import { P2vError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { formatDuration } from '../lib/progress.js';
import { formatBytes } from '../lib/units.js';
import { printable } from '../lib/text.js';
import { ownerAlive, readOwner } from './owner.js';
import { IMPORT_ID, KEPT_FILE, MACHINE_FILE, PARTIAL_SUFFIX, RESERVED_FILE } from './staging.js';
import { describeSize } from './size.js';

export type StagedState = 'committed' | 'committed-in-use' | 'partial-live' | 'partial-dead' | 'partial-kept';

export interface StagedEntry {
  /** The directory's name in the staging dir: `<id>` or `<id>.partial`. */
  name: string;
  id: string;
  dir: string;
  state: StagedState;
  /** From machine.json (committed copies only). */
  instanceName?: string;
  disks?: number;
  /** Blocks allocated under the directory, in bytes. */
  bytesOnDisk: number;
  /** Seconds since the import started (from its id). */
  ageSeconds: number;
}

/** A partial without an owner file is given this long before it counts as dead: it may be an import between its mkdir and its owner file. */
const OWNERLESS_GRACE_MS = 60_000;
/** machine.json is written by us and small; a larger one is not read. */
export const MAX_MACHINE_JSON = 16 * 1024 * 1024;

/** `<id>` or `<id>.partial` → the id, or undefined when the name is not an import's. */
export function importIdOf(name: string): { id: string; partial: boolean } | undefined {
  const partial = name.endsWith(PARTIAL_SUFFIX);
  const id = partial ? name.slice(0, -PARTIAL_SUFFIX.length) : name;
  return IMPORT_ID.test(id) ? { id, partial } : undefined;
}

function startOf(id: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(id)!;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
}

/** Bytes allocated under `path`, walking with lstat only (a symlink counts as itself, never as its target). */
export async function bytesOnDisk(path: string, depth = 0): Promise<number> {
  let st;
  try {
    st = await lstat(path);
  } catch {
    return 0; // gone meanwhile (a concurrent import finished or was cleaned)
  }
  let total = st.blocks * 512;
  if (st.isDirectory() && depth < 8) {
    const names = await readdir(path).catch(() => [] as string[]);
    for (const n of names) total += await bytesOnDisk(join(path, n), depth + 1);
  }
  return total;
}

async function fileExists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** Read a small file of ours without following a link; undefined when absent or odd. */
export async function readOurs(path: string, max: number): Promise<string | undefined> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > max) return undefined;
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

/** Is the import working in `dir` possibly still running? */
async function isLive(dir: string, partial: boolean): Promise<boolean> {
  // Written by the import itself as it exits: nobody works in it any more.
  if (partial && (await fileExists(join(dir, KEPT_FILE)))) return false;
  const owner = await readOwner(dir);
  if (owner === 'unreadable') return true;
  if (owner === 'none') {
    if (!partial) return false;
    const st = await lstat(dir).catch(() => undefined);
    return st !== undefined && Date.now() - st.mtimeMs < OWNERLESS_GRACE_MS;
  }
  return ownerAlive(owner);
}

async function describeEntry(root: string, name: string, now: number): Promise<StagedEntry | undefined> {
  const parsed = importIdOf(name);
  if (!parsed) return undefined;
  const dir = join(root, name);
  const st = await lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) return undefined; // a symlink or a file with an id's name is not ours
  const live = await isLive(dir, parsed.partial);
  let state: StagedState;
  if (parsed.partial)
    state = live ? 'partial-live' : (await fileExists(join(dir, KEPT_FILE))) ? 'partial-kept' : 'partial-dead';
  else state = live ? 'committed-in-use' : 'committed';
  const entry: StagedEntry = {
    name,
    id: parsed.id,
    dir,
    state,
    bytesOnDisk: await bytesOnDisk(dir),
    ageSeconds: Math.max(0, Math.round((now - startOf(parsed.id)) / 1000)),
  };
  if (!parsed.partial) {
    const text = await readOurs(join(dir, MACHINE_FILE), MAX_MACHINE_JSON);
    try {
      const j = JSON.parse(text ?? 'null') as { instanceName?: unknown; machine?: { disks?: unknown } } | null;
      if (typeof j?.instanceName === 'string') entry.instanceName = j.instanceName;
      if (Array.isArray(j?.machine?.disks)) entry.disks = j.machine.disks.length;
    } catch {
      /* listed without a name */
    }
  }
  return entry;
}

function stagingRoot(staging: string): string {
  return resolve(staging);
}

async function entryNames(root: string): Promise<string[]> {
  try {
    return (await readdir(root)).sort();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    throw new P2vError('IO', `cannot read staging directory ${root}: ${(e as Error).message}`, {
      hint: 'give the staging directory of the imports with --staging',
      cause: e,
    });
  }
}

/** Every import (committed or partial) in the staging dir, oldest first. */
export async function listStaged(staging: string): Promise<StagedEntry[]> {
  const root = stagingRoot(staging);
  const now = Date.now();
  const out: StagedEntry[] = [];
  for (const name of await entryNames(root)) {
    const e = await describeEntry(root, name, now);
    if (e) out.push(e);
  }
  return out;
}

/** The `--list` table, one import per line (fits 80 columns for names up to 20 characters). */
export function formatStagedList(entries: StagedEntry[]): string {
  const rows = [['ID', 'NAME', 'DISKS', 'SIZE', 'AGE', 'STATE']];
  for (const e of entries) {
    rows.push([
      e.name,
      e.instanceName !== undefined ? printable(e.instanceName) : '-',
      e.disks !== undefined ? String(e.disks) : '-',
      formatBytes(e.bytesOnDisk),
      formatDuration(e.ageSeconds),
      e.state,
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  '))
    .join('\n');
}

/** `--remove ID`: one staged copy or dead partial import, by the name --list shows. */
export async function removeStaged(staging: string, name: string): Promise<string> {
  const root = stagingRoot(staging);
  if (!importIdOf(name)) {
    throw new P2vError('USAGE', `"${name}" is not an import id`, {
      hint: 'give an ID as p2v-import --list shows it, e.g. 20261122T031718Z-1a2b3c4d',
    });
  }
  // A bare id also names its partial directory when that is all there is.
  let entryName = name;
  if (!name.endsWith(PARTIAL_SUFFIX) && !(await fileExists(join(root, name)))) entryName = name + PARTIAL_SUFFIX;
  const dir = join(root, entryName);
  const st = await lstat(dir).catch(() => undefined);
  if (!st) {
    throw new P2vError('USAGE', `no import ${name} in ${root}`, { hint: 'see p2v-import --list' });
  }
  if (!st.isDirectory()) {
    throw new P2vError(
      'USAGE',
      `${dir} is not an import directory (it is a ${st.isSymbolicLink() ? 'symlink' : 'file'}); not removed`,
      {
        hint: 'remove it by hand if it should not be there',
      },
    );
  }
  if (await isLive(dir, entryName.endsWith(PARTIAL_SUFFIX))) {
    const owner = await readOwner(dir);
    const who = typeof owner === 'object' ? ` (process ${owner.pid} on ${owner.host})` : '';
    throw new P2vError('USAGE', `import ${entryName} is still running${who}; not removed`, {
      hint: 'wait for it to finish, or stop that process first',
    });
  }
  // rm never follows a symlink inside the tree: it unlinks the link itself.
  await rm(dir, { recursive: true, force: true });
  return dir;
}

/**
 * Start-up cleaning: remove the `.partial` directories of imports that are
 * provably dead (killed, crashed, rebooted), except those kept on purpose
 * with --keep-partial. Never fails an import: a directory it cannot remove
 * is reported and left.
 */
export async function clearDeadPartials(
  staging: string,
  logger: Logger,
  salvage?: (dir: string) => Promise<unknown>,
): Promise<string[]> {
  const root = stagingRoot(staging);
  const removed: string[] = [];
  for (const e of await listStaged(root).catch(() => [] as StagedEntry[])) {
    if (e.state !== 'partial-dead') continue;
    try {
      // What a dead import held that is not its own (a base it had taken) goes back first.
      await salvage?.(e.dir);
      await rm(e.dir, { recursive: true, force: true });
      removed.push(e.dir);
      logger.info(`removed ${e.dir}, left by an import that is no longer running`);
    } catch (err) {
      logger.warn(`cannot remove ${e.dir}, left by a dead import: ${(err as Error).message}`);
    }
  }
  return removed;
}

/**
 * Bytes the staging dir holds now, for --max-staging: everything in it, with
 * a running import counted at what it announced it will stage (RESERVED_FILE)
 * when that is more than it holds yet. `except` (this run's own directory) is
 * left out.
 */
export async function stagingUsage(staging: string, except?: string): Promise<number> {
  const root = stagingRoot(staging);
  // The directory's own blocks too: the total is what `du -s` says of it.
  let total = ((await lstat(root).catch(() => undefined))?.blocks ?? 0) * 512;
  for (const name of await entryNames(root)) {
    const path = join(root, name);
    if (path === except) continue;
    let bytes = await bytesOnDisk(path);
    const parsed = importIdOf(name);
    if (parsed?.partial && (await isLive(path, true))) {
      const reserved = Number((await readOurs(join(path, RESERVED_FILE), 64))?.trim());
      if (Number.isSafeInteger(reserved) && reserved > bytes) bytes = reserved;
    }
    total += bytes;
  }
  return total;
}

/** Refuse an import that would take the staging dir past --max-staging. */
export async function checkStagingQuota(
  staging: string,
  ownDir: string,
  needed: number,
  maxStaging: number | undefined,
): Promise<void> {
  if (maxStaging === undefined) return;
  const used = await stagingUsage(staging, ownDir);
  if (used + needed > maxStaging) {
    throw new P2vError(
      'POLICY',
      `staging ${stagingRoot(staging)} holds ${describeSize(used)} and the disks need ${describeSize(needed)}, more than --max-staging ${describeSize(maxStaging)}`,
      { hint: 'remove staged copies you no longer need (p2v-import --list, --remove ID) or raise --max-staging' },
    );
  }
}
