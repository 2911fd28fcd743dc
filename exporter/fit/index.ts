/**
 * Fit-to-size, as the export runs it (docs/design-fit.md):
 *
 *   overlayRoom(source size, target)    before the overlay: room past the source end
 *   measureDisk(disk, file)             every partition's minimum (unmounted, through offset loops)
 *   planFit(FitDisk, target)            plan.ts: the target layout, or a refusal naming the minimum
 *   applyFit(disk, file, layout)        resize, recreate, punch: all in the overlay
 *   partitionTablePatches(...)          table.ts: the new table's sectors
 *   openLayoutContent(...)              layout-content.ts: the stream reads the target disk
 *
 * The minimum is measured twice: once right after inspection, so a target
 * that is too small is refused before minutes of fixups (and --inspect can
 * print it), and again after the fixups and the trim, on the filesystems as
 * they will be sent (a rebuilt initramfs takes room). Both come before any
 * byte of the stream.
 */
import { mkdtemp, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { P2vError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { run } from '../../lib/run.js';
import { formatBytes } from '../../lib/units.js';
import type { InspectedDisk, InspectedPartition } from '../../guest/types.js';
import { attachPartition, type AttachedPartition } from '../disk-files.js';
import { measureFilesystem, recreateSwap, recreateXfs, resizeInPlace } from './filesystems.js';
import { minimumTargetSize, planFit } from './plan.js';
import { partitionTablePatches } from './table.js';
import {
  FIT_ALIGNMENT,
  type DiskLayout,
  type FitDisk,
  type FitKind,
  type FitPartition,
  type PlannedPartition,
  type TablePatch,
} from './types.js';

export { openLayoutContent } from './layout-content.js';
export { minimumTargetSize, planFit } from './plan.js';
export type { DiskLayout, FitDisk, TablePatch } from './types.js';

/** `--target-size`: a byte count, or 'auto' (the smallest safe size). */
export type TargetSize = number | 'auto';

/** A disk as it will be streamed after a fit: its layout and the new table's sectors. */
export interface FittedDisk {
  layout: DiskLayout;
  patches: TablePatch[];
}

const alignUp = (n: number) => Math.ceil(n / FIT_ALIGNMENT) * FIT_ALIGNMENT;

/**
 * Bytes the overlay must offer past the source end for a fit to `target`,
 * before any plan exists: a plan never reads past source + target plus one
 * MiB of alignment per partition (plan.ts; the random-layout test checks it),
 * and a GPT holds at most 128. Only a virtual size: nothing is stored until
 * written.
 */
export function overlayRoom(sourceSize: number, target: TargetSize | undefined): number {
  if (target === undefined) return 0;
  return alignUp(target === 'auto' ? sourceSize : target) + 129 * FIT_ALIGNMENT;
}

const CONTAINER_TYPES = new Set(['5', '05', 'f', '0f', '85']);

function kindOf(p: InspectedPartition): FitKind {
  switch (p.fsType) {
    case 'ext2':
    case 'ext3':
    case 'ext4':
      return 'ext';
    case 'xfs':
    case 'btrfs':
    case 'swap':
      return p.fsType;
    default:
      return 'fixed';
  }
}

function isContainer(disk: InspectedDisk, p: InspectedPartition): boolean {
  return disk.partitionTable === 'dos' && CONTAINER_TYPES.has(p.type.toLowerCase());
}

/** Attach, run, detach: one partition's bytes of the exposed overlay as a loop device. */
async function withLoop<T>(
  file: string,
  offset: number,
  size: number,
  body: (dev: AttachedPartition) => Promise<T>,
): Promise<T> {
  const part = await attachPartition(file, offset, size);
  try {
    return await body(part);
  } finally {
    await part.detach();
  }
}

/**
 * What fit needs to know of one disk: each partition's kind and minimum,
 * measured on the unmounted filesystems of the overlay. A disk without a
 * partition table cannot be fitted (its one filesystem would need the same
 * treatment with nowhere to put a table): refused by `fitDiskOf`'s caller.
 */
export async function measureDisk(disk: InspectedDisk, file: string, workDir: string): Promise<FitDisk> {
  if (disk.partitionTable === 'none')
    throw new P2vError('USAGE', `disk ${disk.index} (${disk.source}) has no partition table: it cannot be resized`, {
      hint: 'give --target-size only for the disks with a partition table, or leave this one at its size',
    });
  const dir = await mkdtemp(join(workDir, 'p2v-fit-'));
  try {
    const partitions: FitPartition[] = [];
    for (const p of disk.partitions) {
      const container = isContainer(disk, p);
      const kind = container ? 'fixed' : kindOf(p);
      let minSize = p.size;
      if (kind !== 'fixed')
        minSize = await withLoop(file, p.start, p.size, async (dev) => {
          const m = await measureFilesystem(p.fsType!, dev.device, dir);
          return Math.min(m.minSize, p.size);
        });
      partitions.push({
        number: p.number,
        start: p.start,
        size: p.size,
        kind,
        minSize,
        fsType: p.fsType,
        ...(container ? { container: true } : {}),
      });
    }
    return { size: disk.size, table: disk.partitionTable, partitions };
  } finally {
    await rmdir(dir).catch(() => undefined);
  }
}

/** The smallest size each disk fits, for --inspect (undefined where a disk cannot be resized). */
export async function minimumSizes(
  disks: InspectedDisk[],
  files: string[],
  workDir: string,
): Promise<(number | undefined)[]> {
  const out: (number | undefined)[] = [];
  for (const [i, d] of disks.entries())
    out.push(d.partitionTable === 'none' ? undefined : minimumTargetSize(await measureDisk(d, files[i]!, workDir)));
  return out;
}

/** The layout for `target`, or the refusal naming the disk and its minimum. */
export function layoutFor(disk: InspectedDisk, measured: FitDisk, target: TargetSize): DiskLayout {
  const size = target === 'auto' ? minimumTargetSize(measured) : target;
  try {
    return planFit(measured, size);
  } catch (e) {
    if (e instanceof P2vError && e.code === 'POLICY')
      throw new P2vError('POLICY', `disk ${disk.index} (${disk.source}): ${e.message}`, { hint: e.hint, cause: e });
    throw e;
  }
}

/** Zeros in the overlay over [offset, offset+length): the room a filesystem grows into held other bytes. */
async function punch(file: string, offset: number, length: number): Promise<void> {
  if (length <= 0) return;
  await run('fallocate', ['--punch-hole', '--offset', String(offset), '--length', String(length), file], {
    what: `clearing ${formatBytes(length)} of the overlay for a growing filesystem`,
  });
}

/** Make one planned partition true in the overlay. */
async function applyPartition(
  p: PlannedPartition,
  inspected: InspectedPartition,
  file: string,
  dir: string,
): Promise<void> {
  switch (p.action) {
    case 'keep':
    case 'move':
      return;
    case 'shrink':
      return withLoop(file, p.overlayStart, p.oldSize, (d) => resizeInPlace(p.fsType!, d.device, p.newSize, dir));
    case 'grow':
      await punch(file, p.overlayStart + p.oldSize, p.newSize - p.oldSize);
      return withLoop(file, p.overlayStart, p.newSize, (d) => resizeInPlace(p.fsType!, d.device, p.newSize, dir));
    case 'recreate':
      if (p.kind === 'swap') {
        await punch(file, p.overlayStart, p.newSize);
        return withLoop(file, p.overlayStart, p.newSize, (d) =>
          recreateSwap(d.device, { uuid: inspected.fsUuid, label: inspected.fsLabel }),
        );
      }
      if (p.kind === 'xfs')
        return withLoop(file, p.oldStart, p.oldSize, (old) =>
          withLoop(file, p.overlayStart, p.newSize, (fresh) => recreateXfs(old.device, fresh.device, dir)),
        );
      throw new Error(`fit: nothing recreates a ${p.kind} partition`);
  }
}

/**
 * Carry out `layout` on the exposed overlay (every filesystem unmounted), then
 * make the new table's sectors. Partitions are done in the order that never
 * reads what another step wrote: recreations first (they read their old place
 * and write past the source end), then shrinks, then the grow.
 */
export async function applyFit(
  disk: InspectedDisk,
  file: string,
  layout: DiskLayout,
  opts: { workDir: string; log: Logger },
): Promise<FittedDisk> {
  const order: Record<PlannedPartition['action'], number> = { recreate: 0, shrink: 1, grow: 2, keep: 3, move: 3 };
  const todo = [...layout.partitions].sort((a, b) => order[a.action] - order[b.action]);
  const dir = await mkdtemp(join(opts.workDir, 'p2v-fit-'));
  try {
    for (const p of todo) {
      if (p.action === 'keep' || p.action === 'move') continue;
      const inspected = disk.partitions.find((q) => q.number === p.number)!;
      opts.log.info(
        `disk ${disk.index} partition ${p.number} (${p.fsType ?? p.kind}): ${p.action} ${formatBytes(p.oldSize)} → ${formatBytes(p.newSize)}`,
      );
      await applyPartition(p, inspected, file, dir);
    }
    const patches = await partitionTablePatches({ diskFile: file, layout, workDir: dir });
    return { layout, patches };
  } finally {
    await rmdir(dir).catch(() => undefined);
  }
}

/** One line per disk and partition for the report and the descriptor's annotation. */
export function describeFit(index: number, layout: DiskLayout): string[] {
  const lines = [`disk ${index}: ${formatBytes(layout.oldSize)} → ${formatBytes(layout.newSize)}`];
  for (const p of layout.partitions) {
    const what =
      p.action === 'keep'
        ? 'kept'
        : p.action === 'move'
          ? 'moved'
          : `${p.action === 'recreate' ? 'recreated' : p.action === 'grow' ? 'grown' : 'shrunk'}`;
    lines.push(
      `  partition ${p.number} (${p.fsType ?? p.kind}): ${formatBytes(p.oldSize)} → ${formatBytes(p.newSize)}, ${what}`,
    );
  }
  for (const n of layout.notes) lines.push(`  note: ${n}`);
  return lines;
}
