/**
 * Fit planning: where each partition of a source disk goes on a target disk
 * of another size, and what must happen to its content. Pure: no I/O, the
 * same input always gives the same layout. docs/design-fit.md states the
 * rules; in short:
 *
 * - The target holds every partition at its old place and size ("keep"):
 *   then the extra space goes to the last ext/xfs/btrfs partition ("grow");
 *   what follows it moves right on the target.
 * - Otherwise the partitions are packed in order from the first one's start
 *   (1 MiB aligned, 1 MiB before each MBR logical partition for its EBR):
 *   fixed ones at their size, resizable ones at their minimum plus a share of
 *   the spare space in proportion to what they could give up.
 *
 * The layout never asks for data to be copied: a partition's target range
 * maps to an overlay range (its old place, or a place past the source's end
 * for a recreated filesystem), and those overlay ranges never overlap, which
 * is what keeps one partition's resize from overwriting another's bytes.
 */
import { P2vError } from '../../lib/errors.js';
import { formatBytes } from '../../lib/units.js';
import type { DiskLayout, FitDisk, FitPartition, PlannedExtended, PlannedPartition } from './types.js';
import { FIT_ALIGNMENT, GPT_TAIL_BYTES } from './types.js';

/** Sector size of every table we read and write. */
const SECTOR = 512;
/** An MBR entry counts sectors in 32 bits: nothing may end past 2 TiB. */
const MBR_MAX_END = 2 ** 32 * SECTOR;

const alignUp = (n: number, a = FIT_ALIGNMENT): number => Math.ceil(n / a) * a;
const alignDown = (n: number, a = FIT_ALIGNMENT): number => Math.floor(n / a) * a;
const end = (p: { start: number; size: number }): number => p.start + p.size;

/** The kinds a filesystem tool can resize (swap is recreated, which is a resize too). */
const RESIZABLE = new Set(['ext', 'xfs', 'btrfs', 'swap']);
/** The kinds that may take the extra space of a larger target. */
const GROWABLE = new Set(['ext', 'xfs', 'btrfs']);

/** The source disk sorted out: content partitions in start order, the extended container apart. */
interface Source {
  disk: FitDisk;
  content: FitPartition[];
  extended?: FitPartition;
  /** Per content partition: is it an MBR logical partition (inside the extended one)? */
  logical: boolean[];
  /** Start of the first partition, container or not: everything before it is the table and the boot area. */
  firstStart: number;
  /** End of the last partition, container or not. */
  lastEnd: number;
}

function partName(p: { number: number; fsType?: string; kind: string }): string {
  return `partition ${p.number} (${p.fsType ?? p.kind})`;
}

function sourceOf(disk: FitDisk): Source {
  const bad = (why: string) =>
    new P2vError('INSPECTION', `cannot plan the fit: ${why}`, {
      hint: 'check the partition table with sfdisk --verify; --target-size needs a sound table',
    });
  if (!Number.isSafeInteger(disk.size) || disk.size <= 0 || disk.size % SECTOR !== 0)
    throw bad(`the disk size ${disk.size} is not a positive multiple of ${SECTOR}`);
  const containers = disk.partitions.filter((p) => p.container);
  if (containers.length > 1) throw bad('more than one extended partition');
  if (containers.length > 0 && disk.table !== 'dos') throw bad('an extended partition on a GPT disk');
  const extended = containers[0];
  for (const p of disk.partitions) {
    if (![p.start, p.size].every((n) => Number.isSafeInteger(n) && n >= 0 && n % SECTOR === 0) || p.size === 0)
      throw bad(`partition ${p.number} has start ${p.start} and size ${p.size}, not whole sectors`);
    if (end(p) > disk.size) throw bad(`partition ${p.number} ends past the disk's end`);
  }
  const content = disk.partitions.filter((p) => !p.container).sort((a, b) => a.start - b.start || a.number - b.number);
  for (let i = 1; i < content.length; i++)
    if (content[i]!.start < end(content[i - 1]!))
      throw bad(`partitions ${content[i - 1]!.number} and ${content[i]!.number} overlap`);
  const logical = content.map((p) => !!extended && p.start >= extended.start && end(p) <= end(extended));
  if (extended) {
    // Each logical partition needs a sector before it, inside the extended one, for its EBR.
    for (const [i, p] of content.entries()) {
      const straddles = p.start < end(extended) && end(p) > extended.start && !logical[i];
      if (straddles) throw bad(`partition ${p.number} straddles the extended partition's edge`);
      if (logical[i] && p.start <= extended.start) throw bad(`logical partition ${p.number} has no room for its EBR`);
    }
  }
  const all = disk.partitions;
  return {
    disk,
    content,
    extended,
    logical,
    firstStart: all.length ? Math.min(...all.map((p) => p.start)) : 0,
    lastEnd: all.length ? Math.max(...all.map(end)) : 0,
  };
}

/** The last byte a partition may use on a target of `size` bytes, plus one. */
function usableEnd(table: FitDisk['table'], size: number): number {
  return table === 'gpt' ? size - GPT_TAIL_BYTES : Math.min(size, MBR_MAX_END);
}

/** The bytes the table itself needs on an empty disk (for a disk without partitions). */
function tableBytes(table: FitDisk['table']): number {
  return table === 'gpt' ? 34 * SECTOR + GPT_TAIL_BYTES : SECTOR;
}

/** The smallest size each content partition may take: fixed ones their size, the rest their minimum on a MiB boundary. */
function baseSizes(src: Source): number[] {
  return src.content.map((p) => {
    if (!RESIZABLE.has(p.kind)) return p.size;
    return Math.min(p.size, alignUp(Math.max(p.minSize, SECTOR)));
  });
}

interface Packing {
  starts: number[];
  /** End of the last partition. */
  end: number;
  extended?: { start: number; end: number };
}

/**
 * Partitions of the given sizes packed in order: the first keeps its start,
 * each next one starts on the next MiB boundary, a logical one 1 MiB later
 * (its EBR goes in that MiB, as fdisk leaves it).
 */
function pack(src: Source, sizes: number[]): Packing {
  const starts: number[] = [];
  let cursor = src.firstStart;
  let ext: { start: number; end: number } | undefined;
  for (const [i, p] of src.content.entries()) {
    let start: number;
    if (i === 0) {
      start = p.start;
      // A first partition that is logical: the extended one is the very first, and keeps its start too.
      if (src.logical[i]) ext = { start: src.extended!.start, end: 0 };
    } else {
      const slot = alignUp(cursor);
      if (src.logical[i]) {
        ext ??= { start: slot, end: 0 };
        start = slot + FIT_ALIGNMENT;
      } else start = slot;
    }
    starts.push(start);
    cursor = start + sizes[i]!;
    if (src.logical[i]) ext!.end = cursor;
  }
  return { starts, end: src.content.length ? cursor : src.firstStart, extended: ext };
}

/** Does every partition fit at its old place on a target of `size` bytes? */
function keepFits(src: Source, size: number): boolean {
  return src.lastEnd <= usableEnd(src.disk.table, size) && size >= tableBytes(src.disk.table);
}

function packedMinimum(src: Source): number {
  const p = pack(src, baseSizes(src));
  const tail = src.disk.table === 'gpt' ? GPT_TAIL_BYTES : 0;
  return Math.max(p.end + tail, tableBytes(src.disk.table));
}

/**
 * The smallest target size planFit accepts: the smaller of "everything where
 * it is" and "everything packed at its minimum".
 */
export function minimumTargetSize(disk: FitDisk): number {
  const src = sourceOf(disk);
  const keep = Math.max(src.lastEnd + (disk.table === 'gpt' ? GPT_TAIL_BYTES : 0), tableBytes(disk.table));
  return Math.min(keep, packedMinimum(src));
}

/** Plan the target disk of `targetSize` bytes. Throws POLICY when the partitions cannot fit. */
export function planFit(disk: FitDisk, targetSize: number): DiskLayout {
  if (!Number.isSafeInteger(targetSize) || targetSize <= 0 || targetSize % SECTOR !== 0)
    throw new P2vError('USAGE', `--target-size ${targetSize} is not a positive multiple of ${SECTOR} bytes`, {
      hint: 'give the size in whole MiB, e.g. 20G or 20480M',
    });
  const src = sourceOf(disk);
  const min = minimumTargetSize(disk);
  if (targetSize < min) {
    const asked = `${targetSize} bytes (${formatBytes(targetSize)})`;
    throw new P2vError(
      'POLICY',
      `the disk does not fit in ${asked}: it needs at least ${min} bytes (${formatBytes(min)}) with its filesystems at their smallest`,
      { hint: `use --target-size ${alignUp(min) / FIT_ALIGNMENT}M or larger` },
    );
  }
  const layout = keepFits(src, targetSize) ? planGrow(src, targetSize) : planShrink(src, targetSize);
  checkLayout(src, layout);
  return layout;
}

function planned(
  p: FitPartition,
  newStart: number,
  newSize: number,
  overlayStart: number,
  action: PlannedPartition['action'],
): PlannedPartition {
  return {
    number: p.number,
    kind: p.kind,
    ...(p.fsType === undefined ? {} : { fsType: p.fsType }),
    oldStart: p.start,
    oldSize: p.size,
    newStart,
    newSize,
    overlayStart,
    action,
  };
}

function extendedOf(src: Source, start: number, endAt: number): PlannedExtended | undefined {
  const e = src.extended;
  if (!e) return undefined;
  return { number: e.number, oldStart: e.start, oldSize: e.size, newStart: start, newSize: endAt - start };
}

function overlayGrowthOf(disk: FitDisk, parts: PlannedPartition[]): number {
  const overlayEnd = Math.max(0, ...parts.map((p) => p.overlayStart + p.newSize));
  return Math.max(0, overlayEnd - disk.size);
}

/** Every partition where it is; the extra space, if any, to the last growable partition. */
function planGrow(src: Source, targetSize: number): DiskLayout {
  const { disk } = src;
  const notes: string[] = [];
  const keepAll = (): DiskLayout => ({
    oldSize: disk.size,
    newSize: targetSize,
    table: disk.table,
    partitions: src.content.map((p) => planned(p, p.start, p.size, p.start, 'keep')),
    overlayGrowth: 0,
    notes,
    ...(src.extended ? { extended: extendedOf(src, src.extended.start, end(src.extended)) } : {}),
  });
  const limit = usableEnd(disk.table, targetSize);
  // Only what the target adds to the source: space the source left free at its end stays free, so a
  // target of the source's own size is the source unchanged.
  const extra = alignDown(Math.max(0, Math.min(limit - src.lastEnd, targetSize - disk.size)));
  if (disk.table === 'dos' && targetSize > MBR_MAX_END)
    notes.push('an MBR table addresses 2 TiB at most: the target space past it stays unpartitioned');
  if (extra === 0) return keepAll();
  const spare = `the target's extra ${formatBytes(extra)} stays unpartitioned`;
  const r = src.content.findLastIndex((p) => GROWABLE.has(p.kind));
  if (r < 0) {
    notes.push(`no ext, xfs or btrfs partition to grow: ${spare}`);
    return keepAll();
  }
  const grow = src.content[r]!;
  // The grown filesystem spreads over its old overlay place and on: what lies there must make way.
  const grownEnd = grow.start + grow.size + extra;
  const parts: PlannedPartition[] = [];
  const recreated: number[] = [];
  for (const [i, p] of src.content.entries()) {
    if (i < r) parts.push(planned(p, p.start, p.size, p.start, 'keep'));
    else if (i === r) parts.push(planned(p, p.start, p.size + extra, p.start, 'grow'));
    else if (p.start >= grownEnd) parts.push(planned(p, p.start + extra, p.size, p.start, 'move'));
    else if (p.kind === 'swap') {
      recreated.push(parts.length);
      parts.push(planned(p, p.start + extra, p.size, -1, 'recreate'));
    } else {
      notes.push(
        `not growing ${partName(grow)}: ${partName(p)} follows it and cannot make way in the overlay; ${spare}`,
      );
      return keepAll();
    }
  }
  // Swap made anew past everything the overlay holds, the grown filesystem included.
  let cursor = alignUp(Math.max(disk.size, grownEnd));
  for (const i of recreated) {
    const p = parts[i]!;
    p.overlayStart = cursor;
    cursor = alignUp(cursor + p.newSize);
  }
  const shift = (at: number) => (at > grow.start ? at + extra : at);
  const e = src.extended;
  return {
    oldSize: disk.size,
    newSize: targetSize,
    table: disk.table,
    partitions: parts,
    overlayGrowth: overlayGrowthOf(disk, parts),
    notes,
    ...(e ? { extended: extendedOf(src, shift(e.start), shift(end(e))) } : {}),
  };
}

/** Partitions packed from the first one's start, resizable ones at their minimum plus a share of the spare space. */
function planShrink(src: Source, targetSize: number): DiskLayout {
  const { disk, content } = src;
  const limit = usableEnd(disk.table, targetSize);
  const base = baseSizes(src);
  const sizes = [...base];
  const weight = content.map((p) => (RESIZABLE.has(p.kind) ? Math.max(0, p.size - p.minSize) : 0));

  // Share the spare space out in proportion to the weights, MiB by MiB; a
  // partition back at its old size takes no more, and what it leaves goes
  // round again to the others.
  let remaining = limit - pack(src, sizes).end;
  let open = content.map((_, i) => weight[i]! > 0 && sizes[i]! < content[i]!.size);
  while (remaining >= FIT_ALIGNMENT && open.some(Boolean)) {
    const total = weight.reduce((n, w, i) => n + (open[i] ? w : 0), 0);
    let given = 0;
    for (const [i, p] of content.entries()) {
      if (!open[i]) continue;
      const share = alignDown(remaining * (weight[i]! / total));
      const add = Math.min(share, p.size - sizes[i]!);
      sizes[i]! += add;
      given += add;
      if (sizes[i] === p.size) open[i] = false;
    }
    if (given === 0) break;
    remaining -= given;
  }
  // A partition back at an old size that is not whole MiB pushes the next
  // boundary on: give back from the last ones until the packing fits.
  for (let guard = 0; pack(src, sizes).end > limit; guard++) {
    const i = sizes.findLastIndex((s, j) => s > base[j]!);
    if (i < 0 || guard > 10_000) throw new Error('fit plan: the packing at the minimum sizes does not fit');
    const s = sizes[i]!;
    sizes[i] = Math.max(base[i]!, s % FIT_ALIGNMENT === 0 ? s - FIT_ALIGNMENT : alignDown(s));
  }

  const packing = pack(src, sizes);
  if (src.extended && !packing.extended)
    throw new P2vError(
      'POLICY',
      `extended partition ${src.extended.number} holds no logical partition: nowhere to put it when packing`,
      {
        hint: 'delete the empty extended partition on the source, or export without --target-size',
      },
    );
  let growth = alignUp(disk.size);
  const parts = content.map((p, i): PlannedPartition => {
    const newStart = packing.starts[i]!;
    const newSize = sizes[i]!;
    if (newSize === p.size) return planned(p, newStart, newSize, p.start, newStart === p.start ? 'keep' : 'move');
    switch (p.kind) {
      case 'xfs': {
        // XFS cannot shrink: a new one is made past the source's end and the files copied into it.
        const at = growth;
        growth = alignUp(at + newSize);
        return planned(p, newStart, newSize, at, 'recreate');
      }
      case 'swap':
        return planned(p, newStart, newSize, p.start, 'recreate');
      default:
        return planned(p, newStart, newSize, p.start, 'shrink');
    }
  });
  return {
    oldSize: disk.size,
    newSize: targetSize,
    table: disk.table,
    partitions: parts,
    overlayGrowth: overlayGrowthOf(disk, parts),
    notes: [],
    ...(packing.extended ? { extended: extendedOf(src, packing.extended.start, packing.extended.end) } : {}),
  };
}

/**
 * The layout's safety invariants, checked on every plan: a violation is a
 * bug in this module, and streaming such a layout would mix up partitions.
 */
function checkLayout(src: Source, layout: DiskLayout): void {
  const fail = (why: string) => {
    throw new Error(`fit plan is inconsistent (a bug): ${why}`);
  };
  const limit = usableEnd(layout.table, layout.newSize);
  const parts = layout.partitions;
  for (const [i, p] of parts.entries()) {
    const from = src.content[i]!;
    if (p.number !== from.number) fail('partitions out of order');
    if (p.newStart < src.firstStart || p.newStart + p.newSize > limit)
      fail(`partition ${p.number} lies outside the target's usable range`);
    if (p.newSize % SECTOR !== 0 || p.newStart % SECTOR !== 0) fail(`partition ${p.number} is not in whole sectors`);
    if (i > 0 && p.newStart < parts[i - 1]!.newStart + parts[i - 1]!.newSize)
      fail(`partitions ${parts[i - 1]!.number} and ${p.number} overlap on the target`);
    if (from.kind === 'fixed' && p.newSize !== from.size) fail(`fixed partition ${p.number} changes size`);
    if (p.newSize < Math.min(from.size, from.minSize)) fail(`partition ${p.number} is below its minimum`);
    if (p.overlayStart !== p.oldStart && p.overlayStart < layout.oldSize)
      fail(`partition ${p.number} is rebuilt inside the source's range`);
  }
  const overlay = parts.map((p) => [p.overlayStart, p.overlayStart + p.newSize] as const).sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < overlay.length; i++)
    if (overlay[i]![0] < overlay[i - 1]![1]) fail('two partitions share overlay bytes');
  if (overlay.some(([, e]) => e > layout.oldSize + layout.overlayGrowth)) fail('overlayGrowth is too small');
  const e = layout.extended;
  if (e) {
    const logical = parts.filter((_, i) => src.logical[i]);
    if (e.newStart + e.newSize > limit) fail('the extended partition lies outside the target');
    for (const p of logical)
      if (p.newStart <= e.newStart || p.newStart + p.newSize > e.newStart + e.newSize)
        fail(`logical partition ${p.number} is not inside the extended one, after an EBR sector`);
    for (const [i, p] of parts.entries())
      if (!src.logical[i] && p.newStart < e.newStart + e.newSize && p.newStart + p.newSize > e.newStart)
        fail(`primary partition ${p.number} overlaps the extended one`);
  }
}
