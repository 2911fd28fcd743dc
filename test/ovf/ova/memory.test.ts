/**
 * Bounded memory: a 256 MiB file goes writeOva('stream') → pipe → readOva
 * while RSS is sampled; growth must stay far below the file size (one chunk
 * held by the writer, a few pipe buffers, garbage not yet collected).
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { readOva, writeOva } from '../../../ovf/ova/index.js';
import { noise, parseTestDescriptor, testDescriptor } from './helpers.js';

const MiB = 1024 * 1024;
const TOTAL = 256 * MiB;
const CHUNK = 4 * MiB;

describe('memory', () => {
  it('streams 256 MiB through write and read with RSS growth well below the file size', async () => {
    const template = noise(MiB, 42);
    const sent = createHash('sha256');
    async function* content(): AsyncGenerator<Buffer> {
      for (let i = 0; i < TOTAL / MiB; i++) {
        const b = Buffer.from(template);
        b.writeUInt32LE(i, 0);
        sent.update(b);
        yield b;
      }
    }

    const base = process.memoryUsage().rss;
    let peak = base;
    const sample = () => (peak = Math.max(peak, process.memoryUsage().rss));
    const timer = setInterval(sample, 20);
    try {
      const pipe = new PassThrough();
      const received = createHash('sha256');
      let bytes = 0;
      const [w, r] = await Promise.all([
        writeOva({
          descriptorName: 'vm.ovf',
          descriptor: testDescriptor,
          files: [{ id: 'f', href: 'big.img', content: content() }],
          mode: 'stream',
          output: pipe,
          chunkSize: CHUNK,
        }).then((res) => {
          pipe.end();
          return res;
        }),
        readOva(pipe, {
          parseDescriptor: parseTestDescriptor,
          onFile: async (_f, data) => {
            for await (const b of data) {
              received.update(b);
              bytes += b.length;
              sample();
            }
          },
        }),
      ]);
      expect(bytes).toBe(TOTAL);
      expect(received.digest('hex')).toBe(sent.digest('hex'));
      expect(w.files[0]!.size).toBe(TOTAL);
      expect(r.verified).toHaveLength(1 + TOTAL / CHUNK);
      const growth = (peak - base) / MiB;
      console.log(
        `OVA memory test: RSS ${Math.round(base / MiB)} MiB → peak ${Math.round(peak / MiB)} MiB (+${growth.toFixed(1)} MiB) for ${TOTAL / MiB} MiB streamed`,
      );
      expect(growth).toBeLessThan(96);
    } finally {
      clearInterval(timer);
    }
  });
});
