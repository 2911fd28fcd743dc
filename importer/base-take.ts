/**
 * Taking a base (docs/design-delta.md): a delta applied in place instead of
 * onto a copy. Copying the base and flushing the copy was most of a final
 * pass's cost on the stager (bench/README.md); when no output shares the base
 * disk's file (one link: a warm pass or an interrupted import keeps no
 * outputs), the import moves the file into its own `.partial` dir and writes
 * the delta onto it under an undo journal (importer/undo-journal.ts). A
 * delta that fails, a signal, or a crash puts the old bytes back and the
 * file back in its base, so a failed delta still leaves the base as it was.
 *
 *   bases/<name>/taken-by      the import id, while the disks are taken
 *   <id>.partial/taken.json    what was taken from where (for a crash)
 *   <id>.partial/diskN.undo    the journal of disk N
 *
 * After a crash the next import finds the dead `.partial` dir and puts the
 * base back before removing it (restoreTakenIn, from clearDeadPartials).
 * After a crash past the commit (the result verified, the journal dropped,
 * the outputs being written), the committed import holds the new disks: the
 * next delta or map request of that machine keeps them as its base
 * (recoverReleasedBase).
 */
import { constants } from 'node:fs';
import { link, lstat, open, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { checkInstanceName } from '../lib/instance-name.js';
import type { Logger } from '../lib/log.js';
import { run } from '../lib/run.js';
import { printable } from '../lib/text.js';
import { baseDiskName, basesRoot, rerecordBaseDisks, TAKEN_MARK, takenBy, type Base } from './base.js';
import { keepCompleteBase } from './base-keep.js';
import { onExit } from '../lib/exit-actions.js';
import { claimStaged, readStagedImport } from './from-staged.js';
import { listStaged, readOurs } from './housekeeping.js';
import { releaseOwner } from './owner.js';
import { writeNewFile } from './place.js';
import { rawDiskName } from './stage-disk.js';
import { replayUndo, UndoJournal, type ByteRange } from './undo-journal.js';

export const TAKEN_FILE = 'taken.json';

interface TakenRecord {
  name: string;
  /** mtimeNs: the file's mtime to the nanosecond, put back after the undo so the base's identity check passes as before. */
  disks: { index: number; ino: number; capacity: number; mtimeNs: string }[];
}

/** A run of bytes to write at `offset`: the buffers in `parts`, `length` in all. */
export interface WriteRun {
  offset: number;
  length: number;
  parts: Buffer[];
}

function undoName(index: number): string {
  return `disk${index}.undo`;
}

/** A small file of ours, created exclusively and flushed (place.ts writeNewFile). */
function writeExclusive(path: string, text: string): Promise<void> {
  return writeNewFile(path, { path, place: dirname(path) }, text, 0o600);
}

/** Move `from` to `to` without replacing anything at `to`. */
async function moveExclusive(from: string, to: string): Promise<void> {
  await link(from, to);
  await unlink(from);
}

/** The disks of a base, moved into an import's `.partial` dir and written there under undo journals. */
export class TakenBase {
  private closed = false;
  private pending: Promise<void> = Promise.resolve();

  private constructor(
    private readonly base: Base,
    readonly dir: string,
    private readonly record: TakenRecord,
    private readonly journals: Map<number, UndoJournal>,
    private readonly logger: Logger,
  ) {}

  /**
   * Take the base's disks into `dir` for the import `owner`, or return
   * undefined when a disk's file is shared (an output is a hard link to it)
   * or lives on another filesystem: the delta then goes onto a copy.
   */
  static async take(base: Base, dir: string, owner: string, logger: Logger): Promise<TakenBase | undefined> {
    for (const d of base.disks) {
      const st = await lstat(join(base.dir, baseDiskName(d.index)));
      if (st.nlink !== 1) {
        logger.debug(
          `disk ${d.index} of the base of ${base.name} is also an output (${st.nlink} links): the delta goes onto a copy`,
        );
        return undefined;
      }
    }
    const mark = join(base.dir, TAKEN_MARK);
    try {
      await writeExclusive(mark, `${owner}\n`);
    } catch (e) {
      // writeNewFile words the errno; the one that means "taken already" is under it.
      if (((e as P2vError).cause as NodeJS.ErrnoException | undefined)?.code !== 'EEXIST') throw e;
      const other = (await takenBy(base.dir)) ?? 'another import';
      throw new P2vError(
        'USAGE',
        `the base of ${base.name} is in use: import ${printable(other)} is applying a delta to it`,
        {
          hint: `wait for that import to end and send this pass again`,
        },
      );
    }
    const record: TakenRecord = { name: base.name, disks: [] };
    for (const d of base.disks) {
      const st = await lstat(join(base.dir, baseDiskName(d.index)), { bigint: true });
      record.disks.push({ index: d.index, ino: d.ino, capacity: d.capacity, mtimeNs: st.mtimeNs.toString() });
    }
    const moved: number[] = [];
    const journals = new Map<number, UndoJournal>();
    try {
      // Written before anything moves: a crash from here on is put right by restoreTakenIn.
      await writeExclusive(join(dir, TAKEN_FILE), JSON.stringify(record) + '\n');
      for (const d of base.disks) {
        const into = join(dir, rawDiskName(d.index));
        await rename(join(base.dir, baseDiskName(d.index)), into);
        moved.push(d.index);
        const st = await lstat(into);
        // Linked or written to between the look above and the move: not ours alone, or not the base's bytes.
        if (st.nlink !== 1) throw Object.assign(new Error('shared'), { code: 'SHARED' });
        if (!st.isFile() || st.ino !== d.ino || st.size !== d.size || st.mtimeMs !== d.mtimeMs)
          throw new P2vError('IO', `the base of ${base.name}: disk ${d.index} changed since it was kept`, {
            hint: `drop the base with p2v-import --remove ${base.name} and send a full export`,
          });
        journals.set(d.index, await UndoJournal.create(join(dir, undoName(d.index))));
      }
    } catch (e) {
      for (const j of journals.values()) await j.close();
      for (const index of moved)
        await moveExclusive(join(dir, rawDiskName(index)), join(base.dir, baseDiskName(index)));
      await rm(join(dir, TAKEN_FILE), { force: true });
      for (const index of moved) await rm(join(dir, undoName(index)), { force: true });
      await rm(mark, { force: true });
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EXDEV' || code === 'SHARED') return undefined;
      throw e;
    }
    logger.debug(`took the base of ${base.name}: the delta is applied in place, under an undo journal`);
    return new TakenBase(base, dir, record, journals, logger);
  }

  /** The taken file of disk `index` (the import's staged disk). */
  path(index: number): string {
    return join(this.dir, rawDiskName(index));
  }

  /** Write `runs` onto disk `index` (opened as `fh`), their old bytes journaled and flushed first. */
  write(index: number, fh: FileHandle, runs: readonly WriteRun[]): Promise<void> {
    const step = this.pending.then(async () => {
      if (this.closed) throw new Error('the base was put back: no more writes');
      const journal = this.journals.get(index);
      if (!journal) throw new Error(`disk ${index} was not taken`);
      await journal.protect(fh, runs as readonly ByteRange[]);
      for (const r of runs) await fh.writev(r.parts, r.offset);
    });
    // The chain goes on after a failed step; the failure is the caller's.
    this.pending = step.catch(() => undefined);
    return step;
  }

  /** Every disk applied and verified: the journals go, the disks stay with the import (the base dir is replaced next). */
  async release(): Promise<void> {
    this.closed = true;
    await this.pending;
    for (const [index, j] of this.journals) {
      await j.close();
      await unlink(join(this.dir, undoName(index)));
    }
    this.journals.clear();
    await unlink(join(this.dir, TAKEN_FILE));
  }

  /** Undo every write and put the disks back in their base (after a failure or a signal). */
  async restore(): Promise<void> {
    this.closed = true;
    await this.pending;
    for (const j of this.journals.values()) await j.close();
    this.journals.clear();
    await putBack(this.base.dir, this.dir, this.record, this.logger);
  }
}

/** Replay each disk's journal, move it back into `baseDir`, re-record its identity, drop the marks. */
async function putBack(baseDir: string, dir: string, record: TakenRecord, logger: Logger): Promise<void> {
  const back: number[] = [];
  for (const d of record.disks) {
    const path = join(dir, rawDiskName(d.index));
    const st = await lstat(path).catch(() => undefined);
    if (!st) continue; // not moved yet when the process stopped
    if (!st.isFile() || st.ino !== d.ino)
      throw new Error(`${path} is not the base disk that was taken (inode ${st.ino}, expected ${d.ino})`);
    const fh = await open(path, constants.O_RDWR | constants.O_NOFOLLOW);
    try {
      const r = await replayUndo(join(dir, undoName(d.index)), fh, d.capacity);
      logger.debug(
        `disk ${d.index} of the base of ${record.name}: ${r.records} undo record(s), ${r.bytes} bytes put back${r.torn ? ' (a torn last record, never applied, skipped)' : ''}`,
      );
    } finally {
      await fh.close();
    }
    // Same bytes as when kept, and the same mtime (to the nanosecond: node's utimes rounds), so base.json holds.
    const ns = BigInt(d.mtimeNs);
    const stamp = `@${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}`;
    const touched = await run('touch', ['-m', '-h', '-d', stamp, '--', path], { allowFailure: true });
    await moveExclusive(path, join(baseDir, baseDiskName(d.index)));
    if (touched.exitCode !== 0) back.push(d.index);
  }
  // Where the mtime could not be put back, the identity the base checks is recorded again.
  if (back.length > 0) await rerecordBaseDisks(baseDir, record.name, back);
  for (const d of record.disks) await rm(join(dir, undoName(d.index)), { force: true });
  await rm(join(dir, TAKEN_FILE), { force: true });
  await rm(join(baseDir, TAKEN_MARK), { force: true });
  logger.info(`the base of ${record.name} is as it was before this import`);
}

/**
 * A dead import's `.partial` dir that had taken a base (the process was
 * killed or the machine stopped mid-delta): put the base back before the dir
 * is removed. Returns false when the dir took nothing.
 */
export async function restoreTakenIn(staging: string, dir: string, logger: Logger): Promise<boolean> {
  const text = await readOurs(join(dir, TAKEN_FILE), 64 * 1024);
  if (text === undefined) return false;
  let record: TakenRecord;
  try {
    record = JSON.parse(text) as TakenRecord;
    if (typeof record.name !== 'string' || !Array.isArray(record.disks)) throw new Error('malformed');
    checkInstanceName(record.name);
  } catch {
    // Cut while it was written: nothing had moved yet.
    return false;
  }
  const baseDir = join(basesRoot(staging), record.name);
  const owner = await takenBy(baseDir);
  const id = basename(dir).replace(/\.partial$/, '');
  if (owner !== id) {
    logger.warn(`${dir} had taken the base of ${printable(record.name)}, which is now someone else's: not put back`);
    return false;
  }
  await putBack(baseDir, dir, record, logger);
  return true;
}

/**
 * The base of `name` still marked taken by an import that committed (its
 * delta applied and verified, the journal dropped) and then stopped before it
 * kept the result as the base: killed or the machine stopped while the
 * outputs were written, which for a large disk takes minutes. That import's
 * staged copy holds the machine's disks as the delta left them, so it
 * becomes the base, copied (the staged import stays for --from-staged, as
 * after a failed output). Without this the base stayed "in use" until
 * --remove and a full export. Returns true when the base was put right.
 */
export async function recoverReleasedBase(staging: string, name: string, logger: Logger): Promise<boolean> {
  checkInstanceName(name);
  const baseDir = join(basesRoot(staging), name);
  const owner = await takenBy(baseDir);
  if (!owner) return false;
  const same = (await listStaged(staging)).filter((e) => e.id === owner);
  // Still running, or dead before its commit (clearDeadPartials puts that base back), or removed since: not this case.
  if (same.length !== 1 || same[0]!.state !== 'committed') return false;
  const dir = same[0]!.dir;
  try {
    await claimStaged(dir, owner);
  } catch {
    return false; // another run claimed it first
  }
  const release = onExit(`release ${dir}`, () => releaseOwner(dir));
  try {
    // Not whole (stopped while its result was being moved into the base): left for --remove, with a word.
    const staged = await readStagedImport(dir, owner).catch((e: unknown) => {
      logger.warn(
        `the base of ${name} was taken by import ${owner}, whose result cannot be kept: ${(e as Error).message}`,
      );
      return undefined;
    });
    if (staged?.instanceName !== name) return false;
    logger.warn(
      `the base of ${name} was taken by import ${owner}, which verified its result and stopped before keeping it: ` +
        `that result becomes the base (copied from ${dir})`,
    );
    await keepCompleteBase(staging, staged, { move: false, logger });
    return (await takenBy(baseDir)) === undefined;
  } finally {
    await release.run();
  }
}
