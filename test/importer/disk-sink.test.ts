import { randomBytes } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_WRITE_RUN, WRITEBACK_EVERY, createRawFileSink } from '../../importer/disk-sink.js';
import { isP2vError } from '../../lib/errors.js';
import { GRAIN_SIZE, type DataChunk } from '../../ovf/types.js';
import { withTmpDir } from '../helpers/tmp.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Feed `chunks` to a new raw file sink; return the file's bytes, its allocated bytes and the sink's count. */
async function sinkInto(dir: string, capacity: number, chunks: DataChunk[]) {
  const path = join(dir, 'disk.raw');
  const sink = await createRawFileSink(path, capacity);
  for (const c of chunks) await sink.write(c);
  await sink.finish();
  const st = await stat(path);
  return { bytes: await readFile(path), allocated: st.blocks * 512, size: st.size, dataBytes: sink.dataBytes };
}

describe('DiskSink (sparse raw file)', () => {
  it('writes chunks of any size and alignment, leaving zero grains as holes', async () => {
    await withTmpDir('sink', async (dir) => {
      const capacity = 5 * MiB + 12345; // not a multiple of the grain
      const image = Buffer.alloc(capacity);
      const chunks: DataChunk[] = [];
      const put = (offset: number, data: Buffer) => {
        data.copy(image, offset);
        chunks.push({ offset, data });
      };
      put(100, randomBytes(3000)); // inside grain 0
      put(GRAIN_SIZE - 10, randomBytes(20)); // straddles grains 0 and 1
      put(4 * GRAIN_SIZE, Buffer.concat([randomBytes(GRAIN_SIZE), Buffer.alloc(GRAIN_SIZE), randomBytes(GRAIN_SIZE)]));
      put(MiB, randomBytes(MAX_WRITE_RUN + 3 * GRAIN_SIZE)); // one run longer than a writev takes
      chunks.push({ offset: 3 * MiB, data: Buffer.alloc(MiB) }); // all zeros: no write at all
      put(capacity - 7, randomBytes(7)); // last bytes, in a short last grain
      const out = await sinkInto(dir, capacity, chunks);
      expect(out.size).toBe(capacity);
      expect(out.bytes.equals(image)).toBe(true);
      // Bytes written: the non-zero pieces of each chunk (zero grains inside a chunk skipped).
      expect(out.dataBytes).toBe(3000 + 20 + 2 * GRAIN_SIZE + MAX_WRITE_RUN + 3 * GRAIN_SIZE + 7);
      // Grains holding data: 0, 1, 4, 6, 16 from 1 MiB plus 3, and the last one.
      const dataGrains = 4 + MAX_WRITE_RUN / GRAIN_SIZE + 3 + 1;
      // The zero grain in the middle of a chunk, the zero chunk and the gaps stay holes.
      expect(out.allocated).toBeLessThanOrEqual(dataGrains * GRAIN_SIZE);
    });
  });

  it('keeps writing correctly across background writebacks', async () => {
    await withTmpDir('sink', async (dir) => {
      const capacity = WRITEBACK_EVERY * 2 + 8 * MiB;
      const chunks: DataChunk[] = [];
      // A data grain in every other grain: more than two writebacks' worth, in runs of one grain.
      const pattern = randomBytes(GRAIN_SIZE);
      for (let off = 0; off < capacity; off += 2 * GRAIN_SIZE) {
        const data = Buffer.from(pattern);
        data.writeUInt32LE(off / GRAIN_SIZE, 0);
        chunks.push({ offset: off, data });
      }
      const path = join(dir, 'disk.raw');
      const sink = await createRawFileSink(path, capacity);
      for (const c of chunks) await sink.write(c);
      await sink.finish();
      expect(sink.dataBytes).toBe((capacity / 2 / GRAIN_SIZE) * GRAIN_SIZE);
      const fh = await open(path, 'r');
      try {
        const buf = Buffer.alloc(2 * GRAIN_SIZE);
        for (let off = 0; off < capacity; off += buf.length) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, off);
          expect(bytesRead).toBe(buf.length);
          expect(buf.readUInt32LE(0)).toBe(off / GRAIN_SIZE);
          expect(buf.subarray(4, GRAIN_SIZE).equals(pattern.subarray(4))).toBe(true);
          expect(buf.subarray(GRAIN_SIZE).equals(Buffer.alloc(GRAIN_SIZE))).toBe(true);
        }
      } finally {
        await fh.close();
      }
    });
  });

  it('refuses out-of-order and out-of-bounds chunks with the offset in the message', async () => {
    await withTmpDir('sink', async (dir) => {
      const sink = await createRawFileSink(join(dir, 'a.raw'), MiB);
      await sink.write({ offset: 2 * GRAIN_SIZE, data: randomBytes(100) });
      const e1 = await sink.write({ offset: GRAIN_SIZE, data: randomBytes(100) }).catch((e: unknown) => e);
      expect(isP2vError(e1) && e1.code).toBe('BAD_VMDK');
      expect((e1 as Error).message).toMatch(/offset 65536 is out of order \(expected 131172 or later\)/);
      const e2 = await sink.write({ offset: MiB - 10, data: randomBytes(100) }).catch((e: unknown) => e);
      expect((e2 as Error).message).toMatch(/runs past the disk's capacity of 1048576 bytes/);
      await sink.abort();
    });
  });
});
