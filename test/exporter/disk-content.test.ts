import { describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { openDiskContent, openMappedContent, type ContentMap } from '../../exporter/disk-content.js';
import { NbdClient } from '../../exporter/nbd/index.js';
import { openOverlay } from '../../exporter/overlay.js';
import type { DataChunk } from '../../ovf/types.js';
import { isP2vError } from '../../lib/errors.js';
import { needPrograms } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import { nbdinfoMap, sparseImage, startNbdkit, withNbdkit } from './nbd/servers.js';

const MiB = 1024 * 1024;

/** Data extents by libnbd's view (nbdinfo --map): runs not reading as zeros. */
async function dataExtents(uri: string): Promise<[number, number][]> {
  const out: [number, number][] = [];
  for (const e of await nbdinfoMap(uri)) {
    if (e.zero) continue;
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === e.offset) last[1] += e.length;
    else out.push([e.offset, e.length]);
  }
  return out;
}

/** Lay chunks onto a zeroed buffer, checking they ascend without overlap. */
function assemble(capacity: number, chunks: DataChunk[]): Buffer {
  const out = Buffer.alloc(capacity);
  let end = 0;
  for (const c of chunks) {
    expect(c.offset).toBeGreaterThanOrEqual(end);
    c.data.copy(out, c.offset);
    end = c.offset + c.data.length;
  }
  return out;
}

async function collect(it: AsyncIterable<DataChunk>): Promise<DataChunk[]> {
  const out: DataChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

describe('openDiskContent', () => {
  it('yields exactly the data extents, whose bytes rebuild the file', async () => {
    await needPrograms('nbdkit', 'nbdinfo');
    await withTmpDir('dc', async (dir) => {
      const file = await sparseImage(dir, 48 * MiB, [
        [0, 512],
        [MiB + 4096, 3 * MiB + 12345],
        [20 * MiB - 100, 300],
        [31 * MiB, 2 * MiB],
        [48 * MiB - 1000, 1000],
      ]);
      await withNbdkit(dir, ['file', file], async (k) => {
        const progress: number[] = [];
        const dc = await openDiskContent(k.socket, {
          readSize: 256 * 1024,
          maxInFlight: 3,
          onProgress: (b) => progress.push(b),
        });
        try {
          const expected = await dataExtents(k.uri);
          expect(dc.capacity).toBe(48 * MiB);
          expect(dc.dataExtents).toBe(expected.length);
          expect(dc.dataBytes).toBe(expected.reduce((n, [, l]) => n + l, 0));
          const chunks = await collect(dc.chunks);
          // Chunks never cross a data extent's end, and none lies in a hole.
          for (const c of chunks) {
            expect(expected.some(([o, l]) => c.offset >= o && c.offset + c.data.length <= o + l)).toBe(true);
            expect(c.data.length).toBeLessThanOrEqual(256 * 1024);
          }
          expect(chunks.reduce((n, c) => n + c.data.length, 0)).toBe(dc.dataBytes);
          expect(assemble(dc.capacity, chunks).equals(await readFile(file))).toBe(true);
          expect(progress[progress.length - 1]).toBe(dc.dataBytes);
          // A second pass reads the same again.
          const again = await collect(dc.chunks);
          expect(again.map((c) => [c.offset, c.data.length])).toEqual(chunks.map((c) => [c.offset, c.data.length]));
        } finally {
          await dc.close();
        }
      });
    });
  });

  it('reads the overlay, not the source: fixups and trims show, trimmed space is skipped', async () => {
    await needPrograms('nbdkit', 'nbdinfo');
    await withTmpDir('dc', async (dir) => {
      const src = await sparseImage(dir, 16 * MiB, [[0, 16 * MiB]]);
      const original = await readFile(src);
      const ov = await openOverlay(src, { workDir: dir });
      try {
        const c = await NbdClient.connect({ socket: ov.socket });
        const fix = randomBytes(70000);
        await c.pwrite(MiB + 1, fix);
        await c.trim(8 * MiB, 4 * MiB);
        await c.close();
        const dc = await openDiskContent(ov.socket);
        try {
          expect(dc.dataBytes).toBe(12 * MiB);
          const chunks = await collect(dc.chunks);
          expect(chunks.some((ch) => ch.offset < 12 * MiB && ch.offset + ch.data.length > 8 * MiB)).toBe(false);
          const expected = Buffer.from(original);
          fix.copy(expected, MiB + 1);
          expected.fill(0, 8 * MiB, 12 * MiB);
          expect(assemble(dc.capacity, chunks).equals(expected)).toBe(true);
        } finally {
          await dc.close();
        }
      } finally {
        await ov.close();
      }
      expect((await readFile(src)).equals(original)).toBe(true);
    });
  });

  it('stops early without leaving reads behind, and fails clearly when a read fails', async () => {
    await needPrograms('nbdkit');
    await withTmpDir('dc', async (dir) => {
      const file = await sparseImage(dir, 32 * MiB, [[0, 32 * MiB]]);
      const trigger = join(dir, 'inject');
      await withNbdkit(
        dir,
        ['--filter=error', 'file', file, 'error-pread=EIO', 'error-pread-rate=1', `error-pread-file=${trigger}`],
        async (k) => {
          const dc = await openDiskContent(k.socket, { readSize: MiB, maxInFlight: 8 });
          try {
            let n = 0;
            for await (const ch of dc.chunks) {
              expect(ch.offset).toBe(n * MiB);
              if (++n === 3) break;
            }
            let seen = 0;
            let err: unknown;
            try {
              for await (const ch of dc.chunks) {
                seen += ch.data.length;
                // Reads already in flight may still succeed; later ones must fail.
                if (seen === 4 * MiB) await writeFile(trigger, '');
              }
            } catch (e) {
              err = e;
            }
            expect(isP2vError(err, 'NBD')).toBe(true);
            expect((err as Error).message).toMatch(/^NBD read of 1048576 bytes at offset \d+ failed: EIO/);
            expect(seen).toBeLessThan(32 * MiB);
          } finally {
            await dc.close();
          }
        },
      );
    });
  });

  it('streams a mapped disk: ranges moved to other offsets, memory patches winning over them, zeros elsewhere', async () => {
    await needPrograms('nbdkit');
    await withTmpDir('dc', async (dir) => {
      const file = await sparseImage(dir, 16 * MiB, [
        [0, 3 * MiB],
        [5 * MiB, 128 * 1024],
        [8 * MiB, 4 * MiB],
      ]);
      const src = await readFile(file);
      const patch = (offset: number, length: number) => ({ offset, data: randomBytes(length) });
      const map: ContentMap = {
        capacity: 12 * MiB,
        // Out of order on purpose; the second one reads a hole and some data further on.
        ranges: [
          { target: 6 * MiB, length: 5 * MiB, source: 8 * MiB },
          { target: 0, length: 2 * MiB, source: 0 },
          { target: 3 * MiB, length: 3 * MiB, source: 4 * MiB },
        ],
        patches: [
          patch(0, 512), // over data
          patch(MiB - 100, 300), // in the middle of a data run
          patch(2 * MiB - 10, 20), // half over a range's end, half over zeros
          patch(3 * MiB + 4096, 4096), // over a hole of a range
          patch(11 * MiB + 5, 7), // past every range
        ],
      };
      const expected = Buffer.alloc(map.capacity);
      for (const r of map.ranges) src.copy(expected, r.target, r.source, r.source + r.length);
      for (const p of map.patches) p.data.copy(expected, p.offset);
      await withNbdkit(dir, ['file', file], async (k) => {
        const dc = await openMappedContent(k.socket, () => map, { readSize: 256 * 1024, maxInFlight: 3 });
        try {
          expect(dc.capacity).toBe(map.capacity);
          const chunks = await collect(dc.chunks);
          expect(chunks.reduce((n, c) => n + c.data.length, 0)).toBe(dc.dataBytes);
          expect(assemble(dc.capacity, chunks).equals(expected)).toBe(true);
          // Data: 2 MiB + 128 KiB + 4 MiB from the overlay, the patches, and nothing of the holes under ranges.
          const overlayData = 2 * MiB + 128 * 1024 + 4 * MiB;
          const patchOnly = 10 + 4096 + 7; // patch bytes over no overlay data
          expect(dc.dataBytes).toBe(overlayData + patchOnly);
        } finally {
          await dc.close();
        }
        const bad = await openMappedContent(k.socket, (size) => ({
          capacity: MiB,
          ranges: [{ target: 0, length: MiB, source: size }],
          patches: [],
        })).catch((e: unknown) => e);
        expect((bad as Error).message).toMatch(/reads the overlay up to/);
      });
    });
  });

  it('streams a 1 GiB disk with ~190 MiB of data in bounded memory, with the same bytes as nbdcopy', async () => {
    await needPrograms('nbdkit', 'nbdcopy', 'nbdinfo');
    await withTmpDir('dc', async (dir) => {
      // sparse-random: deterministic random data in ~20% of the disk, holes elsewhere.
      const k = await startNbdkit(dir, ['sparse-random', 'size=1G', 'percent=20', 'seed=4321', 'runlength=1048576']);
      try {
        const dc = await openDiskContent(k.socket);
        try {
          const expected = await dataExtents(k.uri);
          expect(dc.dataBytes).toBe(expected.reduce((n, [, l]) => n + l, 0));
          expect(dc.dataBytes).toBeGreaterThan(150 * MiB);
          const base = process.memoryUsage().rss;
          let peak = base;
          let bytes = 0;
          const hash = createHash('sha256');
          let at = 0;
          const zeros = Buffer.alloc(MiB);
          const hashZeros = (n: number) => {
            for (; n > 0; n -= Math.min(n, MiB)) hash.update(zeros.subarray(0, Math.min(n, MiB)));
          };
          for await (const ch of dc.chunks) {
            hashZeros(ch.offset - at);
            hash.update(ch.data);
            at = ch.offset + ch.data.length;
            bytes += ch.data.length;
            peak = Math.max(peak, process.memoryUsage().rss);
          }
          hashZeros(dc.capacity - at);
          expect(bytes).toBe(dc.dataBytes);
          // 16 reads × 2 MiB in flight; allow for the GC's lag, never the 200 MiB.
          expect(peak - base).toBeLessThan(120 * MiB);
          const { stdout } = await execa('bash', ['-c', `nbdcopy '${k.uri}' - | sha256sum`]);
          expect(hash.digest('hex')).toBe(stdout.split(' ')[0]);
          console.log(
            `disk-content: ${(bytes / MiB).toFixed(0)} MiB data, RSS growth ${((peak - base) / MiB).toFixed(1)} MiB`,
          );
        } finally {
          await dc.close();
        }
      } finally {
        await k.stop();
      }
    });
  });
});
