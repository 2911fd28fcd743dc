import { describe, expect, it } from 'vitest';
import { minimumTargetSize, planFit } from '../../../exporter/fit/plan.js';
import type { DiskLayout, FitDisk, FitKind, FitPartition, PlannedPartition } from '../../../exporter/fit/types.js';
import { FIT_ALIGNMENT, GPT_TAIL_BYTES } from '../../../exporter/fit/types.js';
import { isP2vError, P2vError } from '../../../lib/errors.js';
import { formatBytes } from '../../../lib/units.js';
import { randomDisk, rng } from './random-disk.js';

const S = 512;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function part(
  number: number,
  start: number,
  size: number,
  kind: FitKind,
  minSize = size,
  fsType?: string,
): FitPartition {
  return { number, start, size, kind, minSize, ...(fsType ? { fsType } : {}) };
}

function extended(number: number, start: number, size: number): FitPartition {
  return { number, start, size, kind: 'fixed', minSize: size, container: true };
}

/** The fields a case checks, per partition in target order. */
type Expect = Pick<PlannedPartition, 'number' | 'newStart' | 'newSize' | 'overlayStart' | 'action'>;

function brief(layout: DiskLayout): Expect[] {
  return layout.partitions.map(({ number, newStart, newSize, overlayStart, action }) => ({
    number,
    newStart,
    newSize,
    overlayStart,
    action,
  }));
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

/** Debian 12's guided MBR install on a 20 GiB disk: root primary, swap logical in an extended partition 2 sectors before it. */
const debianMbr: FitDisk = {
  size: 41943040 * S,
  table: 'dos',
  partitions: [
    part(1, 2048 * S, 39940096 * S, 'ext', 2 * GiB, 'ext4'),
    extended(2, 39944190 * S, 1996802 * S),
    part(5, 39944192 * S, 1996800 * S, 'swap', 512 * MiB, 'swap'),
  ],
};

interface Case {
  name: string;
  disk: FitDisk;
  target: number;
  expect: Expect[];
  overlayGrowth?: number;
  extended?: { newStart: number; newSize: number };
  notes?: RegExp[];
}

const cases: Case[] = [
  {
    name: 'MBR, one ext4 root, shrunk in place to fill the target',
    disk: { size: 20 * GiB, table: 'dos', partitions: [part(1, MiB, 20 * GiB - MiB, 'ext', 2 * GiB, 'ext4')] },
    target: 8 * GiB,
    expect: [{ number: 1, newStart: MiB, newSize: 8 * GiB - MiB, overlayStart: MiB, action: 'shrink' }],
  },
  {
    // base: boot 100 MiB, root 3072 MiB → packed end 3173 MiB, spare 7067 MiB of 10240;
    // weights 412 : 16384 → shares 173 and 6893 MiB (the last MiB rounds away).
    name: 'GPT, separate /boot and root share the spare in proportion to what each can give up',
    disk: {
      size: 20 * GiB,
      table: 'gpt',
      partitions: [
        part(1, MiB, 512 * MiB, 'ext', 100 * MiB, 'ext2'),
        part(2, 513 * MiB, 19456 * MiB, 'ext', 3 * GiB, 'ext4'),
      ],
    },
    target: 10 * GiB + GPT_TAIL_BYTES,
    expect: [
      { number: 1, newStart: MiB, newSize: 273 * MiB, overlayStart: MiB, action: 'shrink' },
      { number: 2, newStart: 274 * MiB, newSize: 9965 * MiB, overlayStart: 513 * MiB, action: 'shrink' },
    ],
  },
  {
    // base: root 2048, swap 512 MiB; packed: root 1–2049, EBR MiB, swap 2050–2562; spare 5630 MiB;
    // weights 17454 : 463 → 5484 and 145 MiB.
    name: "Debian's guided MBR install: root primary, swap logical in an extended partition",
    disk: debianMbr,
    target: 8 * GiB,
    expect: [
      { number: 1, newStart: MiB, newSize: 7532 * MiB, overlayStart: MiB, action: 'shrink' },
      { number: 5, newStart: 7534 * MiB, newSize: 657 * MiB, overlayStart: 39944192 * S, action: 'recreate' },
    ],
    extended: { newStart: 7533 * MiB, newSize: 658 * MiB },
  },
  {
    name: 'two filesystems of equal weight split the spare evenly',
    disk: {
      size: 21 * GiB,
      table: 'dos',
      partitions: [part(1, MiB, 10 * GiB, 'ext', GiB), part(2, 10 * GiB + MiB, 10 * GiB, 'btrfs', GiB)],
    },
    target: 12 * GiB,
    // base ends at 2049 MiB; spare 10239 MiB; 5119 MiB each.
    expect: [
      { number: 1, newStart: MiB, newSize: 6143 * MiB, overlayStart: MiB, action: 'shrink' },
      { number: 2, newStart: 6144 * MiB, newSize: 6143 * MiB, overlayStart: 10 * GiB + MiB, action: 'shrink' },
    ],
  },
  {
    name: 'XFS root on GPT after a BIOS boot partition: recreated past the source end',
    disk: {
      size: 30 * GiB,
      table: 'gpt',
      partitions: [part(1, MiB, MiB, 'fixed', MiB), part(2, 2 * MiB, 30 * GiB - 3 * MiB, 'xfs', 4 * GiB, 'xfs')],
    },
    target: 10 * GiB,
    expect: [
      { number: 1, newStart: MiB, newSize: MiB, overlayStart: MiB, action: 'keep' },
      // 10 GiB minus the GPT tail, rounded down to MiB, minus the first 2 MiB.
      { number: 2, newStart: 2 * MiB, newSize: 10 * GiB - 3 * MiB, overlayStart: 30 * GiB, action: 'recreate' },
    ],
    overlayGrowth: 10 * GiB - 3 * MiB,
  },
  {
    name: 'a vfat ESP keeps its size, partitions after it move left, swap shrinks in place',
    disk: {
      size: 40 * GiB,
      table: 'gpt',
      partitions: [
        part(1, MiB, 512 * MiB, 'fixed', 512 * MiB, 'vfat'),
        part(2, 513 * MiB, 35 * GiB, 'ext', 5 * GiB, 'ext4'),
        part(3, 513 * MiB + 35 * GiB, 4 * GiB, 'swap', 256 * MiB, 'swap'),
      ],
    },
    // Exactly the minimum: base packed end is 1 + 512 + 5120 + 256 MiB.
    target: 5889 * MiB + GPT_TAIL_BYTES,
    expect: [
      { number: 1, newStart: MiB, newSize: 512 * MiB, overlayStart: MiB, action: 'keep' },
      { number: 2, newStart: 513 * MiB, newSize: 5 * GiB, overlayStart: 513 * MiB, action: 'shrink' },
      { number: 3, newStart: 5633 * MiB, newSize: 256 * MiB, overlayStart: 513 * MiB + 35 * GiB, action: 'recreate' },
    ],
  },
  {
    name: 'same size: everything kept, nothing to note',
    disk: debianMbr,
    target: debianMbr.size,
    expect: [
      { number: 1, newStart: 2048 * S, newSize: 39940096 * S, overlayStart: 2048 * S, action: 'keep' },
      { number: 5, newStart: 39944192 * S, newSize: 1996800 * S, overlayStart: 39944192 * S, action: 'keep' },
    ],
    extended: { newStart: 39944190 * S, newSize: 1996802 * S },
    notes: [],
  },
  {
    // extra = 10 GiB (what the target adds); root's overlay grows over the swap's old place, so swap is made anew past it.
    name: 'grow: root takes the extra, the swap after it is recreated in the overlay growth',
    disk: {
      size: 10 * GiB,
      table: 'dos',
      partitions: [part(1, MiB, 9215 * MiB, 'ext', GiB, 'ext4'), part(2, 9216 * MiB, 1023 * MiB, 'swap', 256 * MiB)],
    },
    target: 20 * GiB,
    expect: [
      { number: 1, newStart: MiB, newSize: 19455 * MiB, overlayStart: MiB, action: 'grow' },
      { number: 2, newStart: 19456 * MiB, newSize: 1023 * MiB, overlayStart: 19456 * MiB, action: 'recreate' },
    ],
    overlayGrowth: 10239 * MiB,
    notes: [],
  },
  {
    // extra = 10 GiB (the source's free last MiB stays free); root then ends at 29743 MiB in the
    // overlay, over the swap's old place (19504 MiB), so swap is made anew from there.
    name: "grow Debian's MBR: root grows, the extended partition and its swap move right",
    disk: debianMbr,
    target: 30 * GiB,
    expect: [
      { number: 1, newStart: MiB, newSize: 29742 * MiB, overlayStart: MiB, action: 'grow' },
      { number: 5, newStart: 29744 * MiB, newSize: 975 * MiB, overlayStart: 29743 * MiB, action: 'recreate' },
    ],
    extended: { newStart: 39944190 * S + 10 * GiB, newSize: 1996802 * S },
    overlayGrowth: 10238 * MiB,
  },
  {
    name: 'grow blocked: a vfat partition after the root cannot make way',
    disk: {
      size: 10 * GiB,
      table: 'gpt',
      partitions: [
        part(1, MiB, 9 * GiB, 'ext', GiB, 'ext4'),
        part(2, 9 * GiB + MiB, 512 * MiB, 'fixed', 512 * MiB, 'vfat'),
      ],
    },
    target: 20 * GiB,
    expect: [
      { number: 1, newStart: MiB, newSize: 9 * GiB, overlayStart: MiB, action: 'keep' },
      { number: 2, newStart: 9 * GiB + MiB, newSize: 512 * MiB, overlayStart: 9 * GiB + MiB, action: 'keep' },
    ],
    overlayGrowth: 0,
    notes: [/not growing partition 1 \(ext4\): partition 2 \(vfat\) follows it/],
  },
  {
    name: 'grow: a vfat far enough after the root just moves on the target',
    disk: {
      size: 11 * GiB,
      table: 'dos',
      // 2 GiB of unpartitioned space after root, more than the 1 GiB extra.
      partitions: [part(1, MiB, 8 * GiB, 'ext'), part(2, 10 * GiB, GiB, 'fixed', GiB, 'vfat')],
    },
    target: 12 * GiB,
    expect: [
      { number: 1, newStart: MiB, newSize: 9 * GiB, overlayStart: MiB, action: 'grow' },
      { number: 2, newStart: 11 * GiB, newSize: GiB, overlayStart: 10 * GiB, action: 'move' },
    ],
    overlayGrowth: 0,
  },
  {
    name: 'grow with nothing growable: kept, and said',
    disk: { size: 4 * GiB, table: 'dos', partitions: [part(1, MiB, GiB, 'fixed', GiB, 'vfat')] },
    target: 8 * GiB,
    expect: [{ number: 1, newStart: MiB, newSize: GiB, overlayStart: MiB, action: 'keep' }],
    notes: [/no ext, xfs or btrfs partition to grow/],
  },
];

describe('planFit', () => {
  for (const c of cases)
    it(c.name, () => {
      const layout = planFit(c.disk, c.target);
      expect(brief(layout)).toEqual(c.expect);
      expect(layout.newSize).toBe(c.target);
      expect(layout.oldSize).toBe(c.disk.size);
      if (c.overlayGrowth !== undefined) expect(layout.overlayGrowth).toBe(c.overlayGrowth);
      if (c.extended) expect(layout.extended).toMatchObject(c.extended);
      else expect(layout.extended).toBeUndefined();
      if (c.notes) {
        expect(layout.notes).toHaveLength(c.notes.length);
        c.notes.forEach((re, i) => expect(layout.notes[i]).toMatch(re));
      }
      checkInvariants(c.disk, layout);
    });

  it('refuses a target that is too small, naming the minimum in bytes and MiB', () => {
    const min = minimumTargetSize(debianMbr);
    // root 2048 MiB + EBR MiB + swap 512 MiB from 1 MiB.
    expect(min).toBe(2562 * MiB);
    const e = thrown(() => planFit(debianMbr, 2 * GiB));
    expect(isP2vError(e, 'POLICY')).toBe(true);
    expect((e as P2vError).message).toContain(`${min} bytes (${formatBytes(min)})`);
    expect((e as P2vError).hint).toBe('use --target-size 2562M or larger');
  });

  it('rounds the hint up to whole MiB', () => {
    const disk: FitDisk = { size: GiB, table: 'gpt', partitions: [part(1, 34 * S, 100 * MiB, 'fixed')] };
    const min = minimumTargetSize(disk);
    expect(min).toBe(34 * S + 100 * MiB + GPT_TAIL_BYTES);
    expect((thrown(() => planFit(disk, 100 * MiB)) as P2vError).hint).toBe('use --target-size 101M or larger');
  });

  it('accepts exactly the minimum and refuses a MiB less', () => {
    for (const c of cases) {
      const min = minimumTargetSize(c.disk);
      checkInvariants(c.disk, planFit(c.disk, min));
      expect(
        isP2vError(
          thrown(() => planFit(c.disk, min - MiB)),
          'POLICY',
        ),
      ).toBe(true);
    }
  });

  it('wants the target in whole sectors', () => {
    const e = thrown(() => planFit(debianMbr, 8 * GiB + 100));
    expect(isP2vError(e, 'USAGE')).toBe(true);
  });

  it('a full filesystem whose minimum exceeds its size keeps its size', () => {
    const disk: FitDisk = {
      size: 10 * GiB,
      table: 'dos',
      partitions: [part(1, MiB, 4 * GiB, 'ext', 5 * GiB), part(2, 4 * GiB + MiB, 6 * GiB - MiB, 'ext', GiB)],
    };
    const layout = planFit(disk, 6 * GiB);
    expect(brief(layout)[0]).toEqual({ number: 1, newStart: MiB, newSize: 4 * GiB, overlayStart: MiB, action: 'keep' });
    expect(layout.partitions[1]!.action).toBe('shrink');
    checkInvariants(disk, layout);
  });

  it('an empty extended partition is kept where it is, and refused when packing', () => {
    const disk: FitDisk = {
      size: 10 * GiB,
      table: 'dos',
      partitions: [part(1, MiB, 8 * GiB, 'ext', GiB), extended(2, 8 * GiB + MiB, GiB)],
    };
    expect(planFit(disk, 10 * GiB).extended).toEqual({
      number: 2,
      oldStart: 8 * GiB + MiB,
      oldSize: GiB,
      newStart: 8 * GiB + MiB,
      newSize: GiB,
    });
    const e = thrown(() => planFit(disk, 4 * GiB));
    expect(isP2vError(e, 'POLICY')).toBe(true);
    expect((e as P2vError).message).toMatch(/extended partition 2 holds no logical partition/);
  });

  it('refuses a table it cannot reason about', () => {
    const overlap: FitDisk = {
      size: GiB,
      table: 'gpt',
      partitions: [part(1, MiB, 10 * MiB, 'ext'), part(2, 5 * MiB, MiB, 'ext')],
    };
    expect(
      isP2vError(
        thrown(() => planFit(overlap, GiB)),
        'INSPECTION',
      ),
    ).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// Property-style: random layouts, every target size class, the invariants.

function checkInvariants(disk: FitDisk, layout: DiskLayout): void {
  const limit = disk.table === 'gpt' ? layout.newSize - GPT_TAIL_BYTES : Math.min(layout.newSize, 2 ** 32 * S);
  const content = disk.partitions.filter((p) => !p.container).sort((a, b) => a.start - b.start);
  const firstStart = Math.min(...disk.partitions.map((p) => p.start));
  const ctx = JSON.stringify({ disk, target: layout.newSize });
  expect(
    layout.partitions.map((p) => p.number),
    ctx,
  ).toEqual(content.map((p) => p.number));
  let prevEnd = 0;
  for (const [i, p] of layout.partitions.entries()) {
    const src = content[i]!;
    expect(p.oldStart, ctx).toBe(src.start);
    expect(p.oldSize, ctx).toBe(src.size);
    // Aligned: on a MiB boundary, or where it was (the first partition, or kept/moved by whole MiB).
    expect([0, src.start % FIT_ALIGNMENT], ctx).toContain(p.newStart % FIT_ALIGNMENT);
    expect(p.newStart, ctx).toBeGreaterThanOrEqual(firstStart);
    if (i === 0) expect(p.newStart, ctx).toBe(src.start);
    // Inside the disk, no overlap on the target.
    expect(p.newStart + p.newSize, ctx).toBeLessThanOrEqual(limit);
    expect(p.newStart, ctx).toBeGreaterThanOrEqual(prevEnd);
    prevEnd = p.newStart + p.newSize;
    // Sizes.
    expect(p.newSize, ctx).toBeGreaterThanOrEqual(Math.min(src.minSize, src.size));
    if (src.kind === 'fixed') expect(p.newSize, ctx).toBe(src.size);
    if (p.newSize !== src.size)
      expect((p.newSize - src.size) % FIT_ALIGNMENT === 0 || p.newSize % FIT_ALIGNMENT === 0, ctx).toBe(true);
    // Each action means what it says.
    switch (p.action) {
      case 'keep':
        expect([p.newStart, p.newSize, p.overlayStart], ctx).toEqual([src.start, src.size, src.start]);
        break;
      case 'move':
        expect(p.newSize, ctx).toBe(src.size);
        expect(p.newStart, ctx).not.toBe(src.start);
        expect(p.overlayStart, ctx).toBe(src.start);
        break;
      case 'shrink':
        expect(['ext', 'btrfs'], ctx).toContain(src.kind);
        expect(p.newSize, ctx).toBeLessThan(src.size);
        expect(p.overlayStart, ctx).toBe(src.start);
        break;
      case 'grow':
        expect(['ext', 'xfs', 'btrfs'], ctx).toContain(src.kind);
        expect(p.newSize, ctx).toBeGreaterThan(src.size);
        expect(p.overlayStart, ctx).toBe(src.start);
        break;
      case 'recreate':
        expect(['xfs', 'swap'], ctx).toContain(src.kind);
        if (src.kind === 'xfs') expect(p.overlayStart, ctx).toBeGreaterThanOrEqual(disk.size);
        if (p.overlayStart !== src.start) expect(p.overlayStart, ctx).toBeGreaterThanOrEqual(disk.size);
        break;
    }
    if (p.overlayStart !== src.start) expect(p.overlayStart % FIT_ALIGNMENT, ctx).toBe(0);
  }
  // Overlay ranges pairwise disjoint, and inside the overlay's grown size.
  const ranges = layout.partitions
    .map((p) => [p.overlayStart, p.overlayStart + p.newSize])
    .sort((a, b) => a[0]! - b[0]!);
  for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0], ctx).toBeGreaterThanOrEqual(ranges[i - 1]![1]!);
  for (const [, e] of ranges) expect(e, ctx).toBeLessThanOrEqual(disk.size + layout.overlayGrowth);
  // The growth is bounded before planning (the overlay is opened before the plan is made).
  expect(layout.overlayGrowth, ctx).toBeLessThanOrEqual(
    layout.newSize + (layout.partitions.length + 1) * FIT_ALIGNMENT,
  );
  // The extended partition holds exactly its logical partitions, each after a sector for its EBR.
  const ext = disk.partitions.find((p) => p.container);
  if (ext) {
    const e = layout.extended!;
    expect(e.number, ctx).toBe(ext.number);
    expect(e.newStart + e.newSize, ctx).toBeLessThanOrEqual(limit);
    for (const p of layout.partitions) {
      const logical = p.oldStart > ext.start && p.oldStart < ext.start + ext.size;
      const inside = p.newStart > e.newStart && p.newStart + p.newSize <= e.newStart + e.newSize;
      const outside = p.newStart + p.newSize <= e.newStart || p.newStart >= e.newStart + e.newSize;
      expect(logical ? inside : outside, ctx).toBe(true);
    }
  } else expect(layout.extended, ctx).toBeUndefined();
  // Deterministic.
  expect(planFit(disk, layout.newSize)).toEqual(layout);
}

describe('planFit on random layouts', () => {
  it('keeps its invariants for every target size from the minimum up', () => {
    let plans = 0;
    const seen = new Set<string>();
    for (let seed = 1; seed <= 250; seed++) {
      const r = rng(seed);
      const disk = randomDisk(r);
      const min = minimumTargetSize(disk);
      expect(min % S).toBe(0);
      expect(
        isP2vError(
          thrown(() => planFit(disk, min - S)),
          'POLICY',
        ),
        `seed ${seed}`,
      ).toBe(true);
      const between = min + Math.floor((r() * Math.max(0, disk.size - min)) / S) * S;
      const targets = [min, min + S, min + MiB, between, disk.size - S, disk.size, disk.size + 7 * S, disk.size * 2];
      for (const t of targets) {
        if (t < min) continue;
        const layout = planFit(disk, t);
        checkInvariants(disk, layout);
        for (const p of layout.partitions) seen.add(`${p.kind}:${p.action}`);
        if (layout.extended) seen.add('extended');
        if (layout.notes.length) seen.add('note');
        plans++;
      }
    }
    expect(plans).toBeGreaterThan(1500);
    // The random layouts reach every rule.
    for (const k of [
      'ext:shrink',
      'btrfs:shrink',
      'xfs:recreate',
      'swap:recreate',
      'fixed:move',
      'ext:grow',
      'xfs:grow',
    ])
      expect([...seen]).toContain(k);
    for (const k of ['ext:keep', 'swap:move', 'extended', 'note']) expect([...seen]).toContain(k);
  });
});
