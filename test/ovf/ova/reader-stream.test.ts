/** readOva as a stream consumer: backpressure, input errors, misbehaving consumers. */
import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { readOva } from '../../../ovf/ova/index.js';
import { collect, noise, parseTestDescriptor, tarOf, testDescriptor } from './helpers.js';

const MiB = 1024 * 1024;

describe('readOva streaming', () => {
  it('does not read ahead of a consumer that is not reading', async () => {
    const disk = noise(16 * MiB, 4);
    const archive = await tarOf([
      { name: 'vm.ovf', data: testDescriptor([{ id: 'a', href: 'd.img' }]) },
      { name: 'd.img', data: disk },
    ]);
    let pulled = 0;
    async function* input(): AsyncGenerator<Buffer> {
      for (let i = 0; i < archive.length; i += 64 * 1024) {
        const b = archive.subarray(i, i + 64 * 1024);
        pulled += b.length;
        yield b;
      }
    }
    let pulledWhilePaused = -1;
    let got: Buffer = Buffer.alloc(0);
    await readOva(input(), {
      parseDescriptor: parseTestDescriptor,
      onFile: async (_f, content) => {
        await new Promise((r) => setTimeout(r, 100));
        pulledWhilePaused = pulled;
        got = await collect(content);
      },
    });
    expect(got.equals(disk)).toBe(true);
    expect(pulled).toBe(archive.length);
    // Only the parser's and the entry stream's buffers, not the 16 MiB disk.
    expect(pulledWhilePaused).toBeLessThan(2 * MiB);
  });

  it.each([false, true])('reports an input that fails as IO (gzip: %s)', async (gzip) => {
    const archive = await tarOf([
      { name: 'vm.ovf', data: testDescriptor([{ id: 'a', href: 'd.img' }]) },
      { name: 'd.img', data: noise(MiB) },
    ]);
    const bytes = gzip ? gzipSync(archive) : archive;
    async function* input(): AsyncGenerator<Buffer> {
      yield bytes.subarray(0, bytes.length / 2);
      throw new Error('connection reset by peer');
    }
    await expect(
      readOva(input(), { parseDescriptor: parseTestDescriptor, onFile: async (_f, c) => void (await collect(c)) }),
    ).rejects.toMatchObject({ code: 'IO', message: 'cannot read the OVA stream: connection reset by peer' });
  });

  it('keeps failing a file whose consumer swallowed the error', async () => {
    const archive = await tarOf([
      { name: 'vm.ovf', data: testDescriptor([{ id: 'a', href: 'd.img', size: 10 }]) },
      { name: 'd.img', data: noise(20) },
    ]);
    async function* input() {
      yield archive;
    }
    await expect(
      readOva(input(), {
        parseDescriptor: parseTestDescriptor,
        onFile: async (_f, c) => {
          await collect(c).catch(() => undefined);
        },
      }),
    ).rejects.toMatchObject({ code: 'BAD_OVA', message: 'd.img is 20 bytes but the descriptor says 10' });
  });

  it('wraps a descriptor parser failure as BAD_OVF', async () => {
    const archive = await tarOf([{ name: 'vm.ovf', data: '<notovf/>' }]);
    async function* input() {
      yield archive;
    }
    await expect(
      readOva(input(), { parseDescriptor: parseTestDescriptor, onFile: async () => undefined }),
    ).rejects.toMatchObject({
      code: 'BAD_OVF',
      message: 'cannot parse vm.ovf: no OVF Envelope',
    });
  });
});
