import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import {
  writeStreamOptimized,
  readStreamOptimized,
  parseDescriptor,
  sniffDiskFormat,
  GD_AT_END,
  BATCH_GRAINS,
  chooseEngine,
} from '../../../ovf/vmdk/index.js';
import type { DataChunk, DiskContent } from '../../../ovf/types.js';
import { run, runText } from '../../../lib/run.js';
import { needPrograms } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';
import { awkwardSizes, fileContent, fileStream, makeImage, writeAll, writeChunks, type Extent } from './fixtures.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GRAIN = 64 * KiB;

interface Case {
  name: string;
  capacity: number;
  extents: Extent[];
  /** Feed only these regions (sparse-aware source) instead of the whole file. */
  regionsOnly?: boolean;
  /** Writer on workers and reader on the threadpool (the defaults are the other way round). */
  swapEngines?: boolean;
}

/** Grains any non-zero extent touches: what the writer must store. */
function expectedGrains(c: Case): number {
  const set = new Set<number>();
  for (const e of c.extents) {
    if (e.fill === 'zero') continue;
    for (let g = Math.floor(e.offset / GRAIN); g * GRAIN < e.offset + e.length; g++) set.add(g);
  }
  return set.size;
}

const cases: Case[] = [
  {
    name: 'capacity not a multiple of the grain nor of a sector',
    capacity: 3 * GRAIN + 1000 + 3,
    extents: [
      { offset: 0, length: 4096, fill: 'random' },
      { offset: 3 * GRAIN + 1003 - 5000, length: 5000, fill: 'text' },
    ],
  },
  {
    name: 'empty disk (explicit zeros become holes)',
    capacity: 10 * MiB,
    extents: [{ offset: 3 * MiB + 17, length: 2 * MiB, fill: 'zero' }],
  },
  { name: 'fully random disk', capacity: 8 * MiB, extents: [{ offset: 0, length: 8 * MiB, fill: 'random' }] },
  {
    name: 'first and last grain set, one byte each side of holes',
    capacity: 5 * MiB,
    extents: [
      { offset: 0, length: 1, fill: 'random' },
      { offset: GRAIN - 1, length: 2, fill: 'random' },
      { offset: 5 * MiB - 1, length: 1, fill: 'text' },
    ],
  },
  {
    name: 'text and random grains with writer and reader engines swapped, level 6',
    capacity: 6 * MiB + 512,
    swapEngines: true,
    extents: [
      { offset: 100, length: 2 * MiB, fill: 'text' },
      { offset: 3 * MiB - 7, length: 2 * MiB + 519, fill: 'random' },
    ],
  },
  {
    name: 'data near 0 and near 100 MiB (several grain tables), sparse source',
    capacity: 100 * MiB + 4096,
    regionsOnly: true,
    extents: [
      { offset: 4096 + 13, length: MiB, fill: 'text' },
      { offset: 33 * MiB - 100, length: 200, fill: 'random' },
      { offset: 100 * MiB - 200_000, length: 200_000 + 4096, fill: 'random' },
    ],
  },
];

async function roundTrip(dir: string, c: Case): Promise<void> {
  const src = join(dir, 'source.raw');
  const vmdk = join(dir, 'out.vmdk');
  const back = join(dir, 'back.raw');
  await makeImage(src, c.capacity, c.extents);
  const content = fileContent(src, c.capacity, awkwardSizes(c.capacity), c.regionsOnly ? c.extents : undefined);
  const progress: number[] = [];
  const stream = writeStreamOptimized(content, {
    concurrency: 3,
    onProgress: (n) => progress.push(n),
    ...(c.swapEngines ? { engine: 'workers' as const, level: 6 } : {}),
  });
  await writeAll(vmdk, stream);

  expect(stream.stats.grainsWritten).toBe(expectedGrains(c));
  expect((await readFile(vmdk)).length).toBe(stream.stats.bytesOut);
  const fedBytes = c.regionsOnly ? c.extents.reduce((a, e) => a + e.length, 0) : c.capacity;
  expect(progress.at(-1)).toBe(fedBytes);

  // qemu reads it through the footer's grain directory and tables, our reader through the markers: both must see the source.
  const check = await run('qemu-img', ['check', '-f', 'vmdk', vmdk], { reject: false });
  expect(check.stdout + String(check.stderr)).toContain('No errors were found on the image.');
  expect(check.exitCode).toBe(0);
  expect(await runText('qemu-img', ['compare', '-f', 'raw', '-F', 'vmdk', src, vmdk])).toBe('Images are identical.');

  const info = await readStreamOptimized(fileStream(vmdk), {
    concurrency: 2,
    ...(c.swapEngines ? { engine: 'threadpool' as const } : {}),
  });
  expect(info.capacity).toBe(Math.ceil(c.capacity / 512) * 512);
  expect(info.grainSize).toBe(GRAIN);
  expect(parseDescriptor(info.descriptor).createType).toBe('streamOptimized');
  const yielded = await writeChunks(back, info.capacity, info.grains);
  expect(yielded).toBe(expectedGrains(c));
  expect(await runText('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, back])).toBe('Images are identical.');
}

describe('streamOptimized VMDK round trip through qemu-img and our reader', () => {
  for (const c of cases) {
    it(c.name, async () => {
      await needPrograms('qemu-img');
      await withTmpDir('vmdk-rt', (dir) => roundTrip(dir, c));
    });
  }

  it('writes the header, descriptor and footer the way VMware lays them out', async () => {
    const content: DiskContent = {
      capacity: 40 * MiB,
      chunks: (async function* () {
        yield { offset: 35 * MiB, data: Buffer.alloc(GRAIN, 1) };
      })(),
    };
    const parts: Buffer[] = [];
    for await (const b of writeStreamOptimized(content, {
      adapterType: 'ide',
      hwVersion: '7',
      fileName: 'disk"1.vmdk',
    }))
      parts.push(b);
    const all = Buffer.concat(parts);
    expect(all.length % 512).toBe(0);
    expect(all.readUInt32LE(8)).toBe(0x30001);
    expect(all.readBigUInt64LE(56)).toBe(GD_AT_END);
    const desc = parseDescriptor(
      all
        .subarray(512, 512 * (1 + Number(all.readBigUInt64LE(36))))
        .toString('latin1')
        .replace(/\0+$/, ''),
    );
    expect(desc.fields.get('ddb.adapterType')).toBe('ide');
    expect(desc.fields.get('ddb.virtualHWVersion')).toBe('7');
    expect(desc.fields.get('ddb.geometry.heads')).toBe('16');
    expect(desc.fields.get('ddb.geometry.cylinders')).toBe(String(Math.ceil((40 * MiB) / 512 / (16 * 63))));
    expect(desc.fields.get('parentCID')).toBe('ffffffff');
    expect(desc.fields.get('CID')).toMatch(/^[0-9a-f]{8}$/);
    expect(desc.extents).toEqual([
      { access: 'RW', sectors: BigInt((40 * MiB) / 512), type: 'SPARSE', file: 'disk_1.vmdk' },
    ]);
    // Tail: footer marker, footer (real GD offset), end-of-stream marker.
    const eos = all.subarray(all.length - 512);
    expect(eos.equals(Buffer.alloc(512))).toBe(true);
    const footer = all.subarray(all.length - 1024, all.length - 512);
    const gdSector = Number(footer.readBigUInt64LE(56));
    const footerMarker = all.subarray(all.length - 1536, all.length - 1024);
    expect([footerMarker.readBigUInt64LE(0), footerMarker.readUInt32LE(8), footerMarker.readUInt32LE(12)]).toEqual([
      1n,
      0,
      3,
    ]);
    // GD entry 1 (35 MiB lies in the second 32 MiB table) → GT whose entry 48 → the grain marker with LBA 35 MiB.
    const gtSector = all.readUInt32LE(gdSector * 512 + 4);
    expect(all.readUInt32LE(gdSector * 512)).toBe(0);
    const grainSector = all.readUInt32LE(gtSector * 512 + 48 * 4);
    expect(all.readBigUInt64LE(grainSector * 512)).toBe(BigInt((35 * MiB) / 512));
    expect(sniffDiskFormat(all.subarray(0, 4096))).toBe('vmdk-streamOptimized');
  });

  it('decodes a streamOptimized VMDK written by qemu-img', async () => {
    await needPrograms('qemu-img');
    await withTmpDir('vmdk-qemu', async (dir) => {
      const capacity = 40 * MiB + 3 * 512;
      const src = join(dir, 'source.raw');
      const q = join(dir, 'qemu.vmdk');
      const back = join(dir, 'back.raw');
      const extents: Extent[] = [
        { offset: 0, length: 3 * GRAIN + 5, fill: 'text' },
        { offset: 35 * MiB, length: 100_000, fill: 'random' },
        { offset: capacity - 700, length: 700, fill: 'random' },
      ];
      await makeImage(src, capacity, extents);
      await run('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', src, q]);
      const head = await readFile(q);
      expect(sniffDiskFormat(head.subarray(0, 2048))).toBe('vmdk-streamOptimized');
      const info = await readStreamOptimized(fileStream(q, 65_536));
      expect(info.capacity).toBe(capacity);
      const n = await writeChunks(back, info.capacity, info.grains);
      expect(n).toBe(expectedGrains({ name: '', capacity, extents }));
      expect(await runText('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, back])).toBe('Images are identical.');
    });
  });

  it('pulls the source only as far as the consumer reads (bounded window) and stops it on early exit', async () => {
    let pulled = 0;
    let closed = false;
    const content: DiskContent = {
      capacity: 1024 * MiB,
      chunks: (async function* (): AsyncGenerator<DataChunk> {
        try {
          for (let i = 0; i < 1024 * 16; i++) {
            pulled++;
            yield { offset: i * GRAIN, data: Buffer.alloc(GRAIN, (i % 255) + 1) };
          }
        } finally {
          closed = true;
        }
      })(),
    };
    const it = writeStreamOptimized(content, { concurrency: 2 })[Symbol.asyncIterator]();
    for (let i = 0; i < 5; i++) await it.next(); // header, descriptor, three grains
    // At most the in-flight window (2 × concurrency grains, or batches of grains with workers) plus the one being filled.
    expect(pulled).toBeLessThanOrEqual((2 * 2 + 1) * (chooseEngine(2) === 'workers' ? BATCH_GRAINS : 1) + 1);
    expect(pulled).toBeGreaterThanOrEqual(3);
    await it.return?.();
    expect(closed).toBe(true);
  });
});
