import { describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { planFit } from '../../../exporter/fit/plan.js';
import { partitionTablePatches } from '../../../exporter/fit/table.js';
import type { DiskLayout, FitDisk, TablePatch } from '../../../exporter/fit/types.js';
import { minimumTargetSize } from '../../../exporter/fit/plan.js';
import { randomDisk, rng } from './random-disk.js';
import { needPrograms } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';

const S = 512;
const MiB = 1024 * 1024;

interface JsonPart {
  node: string;
  start: number;
  size: number;
  type: string;
  uuid?: string;
  name?: string;
  attrs?: string;
  bootable?: boolean;
}
interface JsonTable {
  label: string;
  id: string;
  firstlba?: number;
  lastlba?: number;
  partitions: JsonPart[];
}

async function sfdiskJson(file: string): Promise<JsonTable> {
  const { stdout } = await execa('sfdisk', ['--json', file]);
  return (JSON.parse(stdout) as { partitiontable: JsonTable }).partitiontable;
}

const numberOf = (node: string) => Number(/(\d+)$/.exec(node)![1]);

/** A source image: sfdisk's table from `script`, random boot code and a random "core.img" in sectors 1..2047. */
async function sourceImage(dir: string, size: number, script: string): Promise<{ file: string; gap: Buffer }> {
  const file = join(dir, 'src.img');
  const fh = await open(file, 'w');
  const gap = randomBytes(2047 * S);
  try {
    await fh.truncate(size);
    await fh.write(randomBytes(440), 0, 440, 0);
    await fh.write(gap, 0, gap.length, S);
  } finally {
    await fh.close();
  }
  await execa('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', file], { input: script });
  return { file, gap };
}

/** The patches laid on a sparse file of the target size: a disk with the new table and nothing else. */
async function applied(dir: string, layout: DiskLayout, patches: TablePatch[]): Promise<string> {
  const file = join(dir, `target-${layout.newSize}.img`);
  const fh = await open(file, 'w');
  try {
    await fh.truncate(layout.newSize);
    for (const p of patches) await fh.write(p.data, 0, p.data.length, p.offset);
  } finally {
    await fh.close();
  }
  return file;
}

const sha = async (f: string) =>
  createHash('sha256')
    .update(await readFile(f))
    .digest('hex');

/** What must stay as it was: everything but the places. */
const identity = (p: JsonPart) => ({ ...p, node: numberOf(p.node), start: 0, size: 0 });

function checkCommon(
  layout: DiskLayout,
  patches: TablePatch[],
  oldT: JsonTable,
  newT: JsonTable,
  src: Buffer,
  gap: Buffer,
): void {
  expect(newT.label).toBe(oldT.label);
  expect(newT.id).toBe(oldT.id);
  expect(newT.partitions.map(identity)).toEqual(oldT.partitions.map(identity));
  for (const p of newT.partitions) {
    const n = numberOf(p.node);
    const want = layout.partitions.find((q) => q.number === n) ?? layout.extended!;
    expect(want.number).toBe(n);
    expect([p.start * S, p.size * S]).toEqual([want.newStart, want.newSize]);
  }
  // Sector 0 keeps the boot code; no patch carries a byte of sectors 1..2047 (grub's core.img
  // comes from the overlay) nor of any partition.
  const zero = patches.find((p) => p.offset === 0)!;
  expect(zero.data.subarray(0, 440).equals(src.subarray(0, 440))).toBe(true);
  for (const p of patches) {
    const start = p.offset;
    const end = p.offset + p.data.length;
    for (const q of layout.partitions) expect(start >= q.newStart + q.newSize || end <= q.newStart).toBe(true);
    if (start < 2048 * S && end > S) {
      // Only a GPT's own header and entries (sectors 1..33) may lie there, and they are not the old gap.
      expect(layout.table).toBe('gpt');
      expect(end).toBeLessThanOrEqual(34 * S);
      expect(p.data.subarray(S, end).equals(gap.subarray(0, end - S))).toBe(false);
    }
  }
  const sorted = [...patches].sort((a, b) => a.offset - b.offset);
  expect(patches).toEqual(sorted);
  for (let i = 1; i < sorted.length; i++)
    expect(sorted[i]!.offset).toBeGreaterThanOrEqual(sorted[i - 1]!.offset + sorted[i - 1]!.data.length);
}

describe('partitionTablePatches', () => {
  it('MBR with boot code, extended and logical partitions: only sector 0 and the EBRs, everything but the places kept', async () => {
    await needPrograms('sfdisk');
    await withTmpDir('fit-table', async (dir) => {
      // Debian's guided layout: the extended partition 2 sectors before its first logical one.
      const { file, gap } = await sourceImage(
        dir,
        64 * MiB,
        [
          'label: dos',
          'label-id: 0x5eed1234',
          '',
          'p1 : start=2048, size=79872, type=83, bootable',
          'p2 : start=83966, size=32770, type=5',
          'p5 : start=83968, size=20480, type=82',
          'p6 : start=106496, size=10240, type=83',
          '',
        ].join('\n'),
      );
      const src = await readFile(file);
      const before = await sha(file);
      const disk: FitDisk = {
        size: 64 * MiB,
        table: 'dos',
        partitions: [
          { number: 1, start: 2048 * S, size: 39 * MiB, kind: 'ext', minSize: 10 * MiB },
          { number: 2, start: 83966 * S, size: 32770 * S, kind: 'fixed', minSize: 32770 * S, container: true },
          { number: 5, start: 83968 * S, size: 10 * MiB, kind: 'swap', minSize: 4 * MiB },
          { number: 6, start: 106496 * S, size: 5 * MiB, kind: 'ext', minSize: 2 * MiB },
        ],
      };
      const oldT = await sfdiskJson(file);
      for (const target of [32 * MiB, 64 * MiB, 100 * MiB]) {
        const layout = planFit(disk, target);
        const patches = await partitionTablePatches({ diskFile: file, layout, workDir: dir });
        // Sector 0 and one EBR per logical partition.
        expect(patches.map((p) => p.data.length)).toEqual([S, S, S]);
        const out = await applied(dir, layout, patches);
        const newT = await sfdiskJson(out);
        checkCommon(layout, patches, oldT, newT, src, gap);
        const verify = await execa('sfdisk', ['--verify', out]);
        expect(verify.stdout).toContain('No errors detected');
      }
      expect(await sha(file)).toBe(before);
      // The scratch image is gone.
      expect((await readdir(dir)).filter((n) => n.startsWith('p2v-fit-table'))).toEqual([]);
    });
  });

  it('GPT with a BIOS boot partition, names, GUIDs and attributes: backup at the new end', async () => {
    await needPrograms('sfdisk');
    await withTmpDir('fit-table', async (dir) => {
      const { file, gap } = await sourceImage(
        dir,
        96 * MiB,
        [
          'label: gpt',
          'label-id: 0C0FFEE0-1111-4222-8333-444455556666',
          'first-lba: 34',
          '',
          'p1 : start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, uuid=AAAAAAAA-1111-4222-8333-444455556666, name="BIOS boot", attrs="LegacyBIOSBootable"',
          // A name with a quote, a comma and a non-ASCII letter, written as sfdisk escapes.
          'p2 : start=4096, size=131072, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=BBBBBBBB-1111-4222-8333-444455556666, name="r\\x22oot, \\xc3\\xa9", attrs="RequiredPartition GUID:60,63"',
          'p4 : start=135168, size=32768, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, uuid=DDDDDDDD-1111-4222-8333-444455556666, name="swap"',
          '',
        ].join('\n'),
      );
      // The protective MBR marked active, as some BIOSes want it.
      const fh = await open(file, 'r+');
      await fh.write(Buffer.from([0x80]), 0, 1, 446).finally(() => fh.close());
      const src = await readFile(file);
      const before = await sha(file);
      const oldT = await sfdiskJson(file);
      expect(oldT.partitions[1]!.name).toBe('r"oot, é');
      const disk: FitDisk = {
        size: 96 * MiB,
        table: 'gpt',
        partitions: [
          { number: 1, start: MiB, size: MiB, kind: 'fixed', minSize: MiB },
          { number: 2, start: 2 * MiB, size: 64 * MiB, kind: 'ext', minSize: 20 * MiB },
          { number: 4, start: 66 * MiB, size: 16 * MiB, kind: 'swap', minSize: 4 * MiB },
        ],
      };
      for (const target of [40 * MiB, 96 * MiB, 200 * MiB]) {
        const layout = planFit(disk, target);
        const patches = await partitionTablePatches({ diskFile: file, layout, workDir: dir });
        // Protective MBR + header + 32 sectors of entries; 32 sectors of entries + header at the end.
        expect(patches.map((p) => [p.offset, p.data.length])).toEqual([
          [0, 34 * S],
          [target - 33 * S, 33 * S],
        ]);
        expect(patches[0]!.data[446]).toBe(0x80);
        expect(patches[0]!.data[450]).toBe(0xee);
        const out = await applied(dir, layout, patches);
        const newT = await sfdiskJson(out);
        checkCommon(layout, patches, oldT, newT, src, gap);
        expect(newT.firstlba).toBe(34);
        expect(newT.lastlba).toBe(target / S - 34);
        const verify = await execa('sfdisk', ['--verify', out]);
        expect(verify.stdout).toContain('No errors detected');
      }
      expect(await sha(file)).toBe(before);
    });
  });

  it('random layouts: sfdisk takes every planned table, and it verifies', async () => {
    await needPrograms('sfdisk');
    const DOS: Record<string, string> = { ext: '83', xfs: '83', btrfs: '83', swap: '82', fixed: 'c' };
    const GPT: Record<string, string> = {
      ext: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
      xfs: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
      btrfs: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
      swap: '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F',
      fixed: 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7',
    };
    await withTmpDir('fit-table', async (dir) => {
      // The first seeds of each sort: MBR with logical partitions (the EBRs), GPT, plain MBR.
      const picked: [number, FitDisk][] = [];
      const want = { logical: 2, gpt: 1, dos: 1 };
      for (let seed = 1; picked.length < 4; seed++) {
        const d = randomDisk(rng(seed));
        const sort = d.table === 'gpt' ? 'gpt' : d.partitions.some((p) => p.container) ? 'logical' : 'dos';
        if (want[sort]-- > 0) picked.push([seed, d]);
      }
      for (const [seed, disk] of picked) {
        const lines = [`label: ${disk.table}`, ...(disk.table === 'gpt' ? ['first-lba: 34'] : []), ''];
        for (const p of [...disk.partitions].sort((a, b) => a.number - b.number)) {
          const type = p.container ? '5' : (disk.table === 'gpt' ? GPT : DOS)[p.kind];
          lines.push(`p${p.number} : start=${p.start / S}, size=${p.size / S}, type=${type}`);
        }
        const { file, gap } = await sourceImage(dir, disk.size, lines.join('\n') + '\n');
        const src = Buffer.alloc(2048 * S);
        const fh = await open(file, 'r');
        await fh.read(src, 0, src.length, 0).finally(() => fh.close());
        const oldT = await sfdiskJson(file);
        const min = minimumTargetSize(disk);
        for (const target of [min, Math.ceil((min + disk.size) / 2 / S) * S, disk.size + 64 * MiB]) {
          const layout = planFit(disk, target);
          const patches = await partitionTablePatches({ diskFile: file, layout, workDir: dir });
          const out = await applied(dir, layout, patches);
          checkCommon(layout, patches, oldT, await sfdiskJson(out), src, gap);
          const verify = await execa('sfdisk', ['--verify', out]);
          expect(verify.stdout, `seed ${seed}, target ${target}`).toContain('No errors detected');
          await execa('rm', [out]);
        }
        await execa('rm', [file]);
      }
    });
  });

  it('refuses a layout that does not match the disk', async () => {
    await needPrograms('sfdisk');
    await withTmpDir('fit-table', async (dir) => {
      const { file } = await sourceImage(dir, 16 * MiB, 'label: dos\n\np1 : start=2048, size=8192, type=83\n');
      const layout = planFit(
        {
          size: 16 * MiB,
          table: 'dos',
          partitions: [{ number: 2, start: MiB, size: 4 * MiB, kind: 'ext', minSize: MiB }],
        },
        8 * MiB,
      );
      await expect(partitionTablePatches({ diskFile: file, layout, workDir: dir })).rejects.toThrow(
        /partition 1 of the disk is not in the fit plan/,
      );
      const gpt = { ...layout, table: 'gpt' as const };
      await expect(partitionTablePatches({ diskFile: file, layout: gpt, workDir: dir })).rejects.toThrow(
        /has a dos table, the fit plan a gpt one/,
      );
    });
  });
});
