import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { openLayoutContent } from '../../../exporter/fit/layout-content.js';
import { planFit } from '../../../exporter/fit/plan.js';
import { partitionTablePatches } from '../../../exporter/fit/table.js';
import type { DiskLayout, FitDisk } from '../../../exporter/fit/types.js';
import { NbdClient } from '../../../exporter/nbd/index.js';
import type { DataChunk } from '../../../ovf/types.js';
import { isP2vError } from '../../../lib/errors.js';
import { needPrograms } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';
import { nbdinfoMap, startNbdkit } from '../nbd/servers.js';

const S = 512;
const MiB = 1024 * 1024;

/**
 * The source: MBR with boot code and a random "core.img" in sectors 1..2047;
 * p1 a 4 MiB partition copied as it is, p2 an "ext" partition 3 MiB further
 * with scattered data (some past where it will be cut), p3 an "xfs", p4 swap.
 */
const disk: FitDisk = {
  size: 64 * MiB,
  table: 'dos',
  partitions: [
    { number: 1, start: MiB, size: 4 * MiB, kind: 'fixed', minSize: 4 * MiB },
    { number: 2, start: 8 * MiB, size: 24 * MiB, kind: 'ext', minSize: 6 * MiB },
    { number: 3, start: 32 * MiB, size: 16 * MiB, kind: 'xfs', minSize: 4 * MiB },
    { number: 4, start: 48 * MiB, size: 8 * MiB, kind: 'swap', minSize: 2 * MiB },
  ],
};

const pieces: [number, number][] = [
  [0, 440], // boot code
  [S, 2047 * S], // core.img
  [MiB, 4 * MiB], // p1, full
  [8 * MiB, 300 * 1024], // p2: superblock area
  [8 * MiB + 2 * MiB + 12345, 700_000], // p2: a file
  [8 * MiB + 5 * MiB, MiB], // p2: will be trimmed in the overlay
  [8 * MiB + 20 * MiB, 2 * MiB], // p2: past any shrunk end
  [32 * MiB, 3 * MiB], // p3 (old xfs)
  [48 * MiB, 8 * MiB], // p4 (old swap, random pages)
  [60 * MiB, MiB], // after every partition: never on the target
];

async function buildSource(dir: string): Promise<string> {
  const file = join(dir, 'src.img');
  const fh = await open(file, 'w');
  try {
    await fh.truncate(disk.size);
    for (const [off, len] of pieces) await fh.write(randomBytes(len), 0, len, off);
  } finally {
    await fh.close();
  }
  const table = ['label: dos', 'label-id: 0x0ddba11', ''];
  table.push('p1 : start=2048, size=8192, type=c, bootable');
  table.push('p2 : start=16384, size=49152, type=83');
  table.push('p3 : start=65536, size=32768, type=83');
  table.push('p4 : start=98304, size=16384, type=82');
  await execa('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', file], { input: table.join('\n') + '\n' });
  return file;
}

/**
 * What the fit's filesystem steps would do, done with plain NBD writes on the
 * overlay and the same writes on `mirror` (a copy of the source grown like the
 * overlay): a recreated partition gets new bytes at its overlay place, and a
 * trim punches a hole in p2.
 */
async function fakeResize(socket: string, mirror: string, layout: DiskLayout): Promise<void> {
  const c = await NbdClient.connect({ socket });
  const fh = await open(mirror, 'r+');
  try {
    await fh.truncate(layout.oldSize + layout.overlayGrowth);
    const write = async (offset: number, data: Buffer) => {
      await c.pwrite(offset, data);
      await fh.write(data, 0, data.length, offset);
    };
    for (const p of layout.partitions) {
      if (p.action !== 'recreate') continue;
      // A new filesystem: a header and some files, the rest never written.
      await write(p.overlayStart, randomBytes(128 * 1024));
      await write(p.overlayStart + p.newSize - 64 * 1024, randomBytes(64 * 1024));
      if (p.overlayStart === p.oldStart) {
        // Made anew in place (swap): the old pages are discarded first.
        await c.trim(p.overlayStart + 128 * 1024, p.newSize - 192 * 1024);
        await fh.write(Buffer.alloc(p.newSize - 192 * 1024), 0, p.newSize - 192 * 1024, p.overlayStart + 128 * 1024);
      }
    }
    await c.trim(8 * MiB + 5 * MiB, MiB);
    await fh.write(Buffer.alloc(MiB), 0, MiB, 8 * MiB + 5 * MiB);
    await c.flush();
  } finally {
    await fh.close();
    await c.close();
  }
}

/** The target built the slow, obvious way: dd each range out of the mirror, then the table patches. */
async function expectedImage(
  dir: string,
  mirror: string,
  layout: DiskLayout,
  patches: { offset: number; data: Buffer }[],
): Promise<string> {
  const out = join(dir, `expected-${layout.newSize}.img`);
  await execa('truncate', ['-s', String(layout.newSize), out]);
  const dd = (skip: number, seek: number, count: number) =>
    execa('dd', [
      `if=${mirror}`,
      `of=${out}`,
      'bs=512',
      `skip=${skip / S}`,
      `seek=${seek / S}`,
      `count=${count / S}`,
      'conv=notrunc,sparse',
      'status=none',
    ]);
  await dd(0, 0, layout.partitions[0]!.newStart);
  for (const p of layout.partitions) await dd(p.overlayStart, p.newStart, p.newSize);
  const fh = await open(out, 'r+');
  try {
    for (const p of patches) await fh.write(p.data, 0, p.data.length, p.offset);
  } finally {
    await fh.close();
  }
  return out;
}

async function assemble(
  dir: string,
  capacity: number,
  chunks: AsyncIterable<DataChunk>,
): Promise<{ file: string; list: [number, number][] }> {
  const file = join(dir, `streamed-${capacity}.img`);
  const fh = await open(file, 'w');
  const list: [number, number][] = [];
  let end = 0;
  try {
    await fh.truncate(capacity);
    for await (const c of chunks) {
      expect(c.offset).toBeGreaterThanOrEqual(end);
      end = c.offset + c.data.length;
      expect(end).toBeLessThanOrEqual(capacity);
      list.push([c.offset, c.data.length]);
      await fh.write(c.data, 0, c.data.length, c.offset);
    }
  } finally {
    await fh.close();
  }
  return { file, list };
}

/** Bytes of [a, b) that lie inside the (ascending) chunks. */
function covered(list: [number, number][], a: number, b: number): number {
  let n = 0;
  for (const [o, l] of list) n += Math.max(0, Math.min(b, o + l) - Math.max(a, o));
  return n;
}

describe('openLayoutContent', () => {
  for (const [what, target] of [
    [
      'shrink: p2 shrunk, p3 (xfs) recreated past the source end, p4 (swap) recreated in place, all moved left',
      36 * MiB,
    ],
    ['grow: p3 grows over the old swap, swap recreated in the overlay growth', 80 * MiB],
  ] as const)
    it(what, async () => {
      await needPrograms('nbdkit', 'nbdinfo', 'sfdisk', 'dd', 'truncate');
      await withTmpDir('fit-content', async (dir) => {
        const src = await buildSource(dir);
        const layout = planFit(disk, target);
        const actions = layout.partitions.map((p) => p.action);
        if (target < disk.size) {
          expect(actions).toEqual(['keep', 'shrink', 'recreate', 'recreate']);
          expect(layout.partitions[1]!.newStart).toBeLessThan(layout.partitions[1]!.oldStart);
        } else expect(actions).toEqual(['keep', 'keep', 'grow', 'recreate']);
        expect(layout.overlayGrowth).toBeGreaterThan(0);
        const patches = await partitionTablePatches({ diskFile: src, layout, workDir: dir });
        const mirror = join(dir, 'mirror.img');
        await execa('cp', ['--sparse=always', src, mirror]);

        const k = await startNbdkit(dir, [
          '--filter=cow',
          '--filter=truncate',
          'file',
          `file=${src}`,
          `truncate=${layout.oldSize + layout.overlayGrowth}`,
        ]);
        try {
          await fakeResize(k.socket, mirror, layout);
          const progress: number[] = [];
          const dc = await openLayoutContent(k.socket, layout, patches, {
            readSize: 256 * 1024,
            maxInFlight: 4,
            onProgress: (n) => progress.push(n),
          });
          try {
            expect(dc.capacity).toBe(target);
            const { file, list } = await assemble(dir, dc.capacity, dc.chunks);
            const yielded = list.reduce((n, [, l]) => n + l, 0);
            expect(yielded).toBe(dc.dataBytes);
            expect(progress[progress.length - 1]).toBe(dc.dataBytes);
            const expected = await expectedImage(dir, mirror, layout, patches);
            await execa('cmp', [expected, file]);

            // Holes stay holes: the data bytes are exactly the overlay's data under the mapped
            // ranges (nbdinfo's view), with the patches in their place.
            const data = (await nbdinfoMap(k.uri)).filter((e) => !e.zero);
            const onTarget: [number, number][] = patches.map((t) => [t.offset, t.offset + t.data.length]);
            const lead = { newStart: 0, newSize: layout.partitions[0]!.newStart, overlayStart: 0 };
            for (const r of [lead, ...layout.partitions])
              for (const e of data) {
                const a = Math.max(r.overlayStart, e.offset);
                const b = Math.min(r.overlayStart + r.newSize, e.offset + e.length);
                if (a < b) onTarget.push([r.newStart + a - r.overlayStart, r.newStart + b - r.overlayStart]);
              }
            onTarget.sort((x, y) => x[0] - y[0]);
            let want = 0;
            let upTo = 0;
            for (const [a, b] of onTarget) {
              want += Math.max(0, b - Math.max(a, upTo));
              upTo = Math.max(upTo, b);
            }
            expect(dc.dataBytes).toBe(want);
            // The trimmed MiB of p2, the gaps between partitions and the tail are not streamed.
            const p2 = layout.partitions[1]!;
            expect(covered(list, p2.newStart + 5 * MiB, p2.newStart + 6 * MiB)).toBe(0);
            for (let i = 1; i < layout.partitions.length; i++) {
              const a = layout.partitions[i - 1]!;
              const b = layout.partitions[i]!;
              expect(covered(list, a.newStart + a.newSize, b.newStart)).toBe(0);
            }
            const last = layout.partitions[layout.partitions.length - 1]!;
            expect(covered(list, last.newStart + last.newSize, target)).toBe(0);
            // The core.img in sectors 1..2047 comes through from the overlay.
            const got = await readFile(file);
            const source = await readFile(src);
            expect(got.subarray(S, 2048 * S).equals(source.subarray(S, 2048 * S))).toBe(true);
            expect(got.subarray(0, 440).equals(source.subarray(0, 440))).toBe(true);
            // A second pass reads the same.
            const again: [number, number][] = [];
            for await (const c of dc.chunks) again.push([c.offset, c.data.length]);
            expect(again).toEqual(list);
          } finally {
            await dc.close();
          }
        } finally {
          await k.stop();
        }
      });
    });

  it('refuses an overlay without the room the layout needs', async () => {
    await needPrograms('nbdkit', 'sfdisk');
    await withTmpDir('fit-content', async (dir) => {
      const src = await buildSource(dir);
      const layout = planFit(disk, 36 * MiB);
      const k = await startNbdkit(dir, ['--filter=cow', 'file', `file=${src}`]);
      try {
        const err = await openLayoutContent(k.socket, layout, []).catch((e: unknown) => e);
        expect(isP2vError(err, 'NBD')).toBe(true);
        expect((err as Error).message).toContain(`reads up to ${layout.oldSize + layout.overlayGrowth}`);
      } finally {
        await k.stop();
      }
    });
  });
});
