import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { NbdClient, type NbdExtent } from '../../../exporter/nbd/index.js';
import { openOverlay } from '../../../exporter/overlay.js';
import { P2vError, isP2vError } from '../../../lib/errors.js';
import { needPrograms } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';
import { nbdinfoMap, sparseImage, startNbdkit, startQemuNbd, withNbdkit } from './servers.js';

const MiB = 1024 * 1024;

async function rejection(p: Promise<unknown>): Promise<P2vError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof P2vError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

describe('NbdClient against nbdkit', () => {
  it('negotiates size and flags, and reads odd ranges exactly as the file holds them', async () => {
    await needPrograms('nbdkit');
    await withTmpDir('nbd', async (dir) => {
      const file = join(dir, 'rand.img');
      const bytes = randomBytes(9 * MiB + 3 * 512);
      await writeFile(file, bytes);
      // The policy filter makes nbdkit advertise block sizes and refuse any request breaking them.
      const args = [
        '--filter=blocksize-policy',
        'file',
        file,
        'blocksize-minimum=512',
        'blocksize-preferred=4096',
        'blocksize-maximum=1M',
        'blocksize-error-policy=error',
      ];
      await withNbdkit(dir, args, async (k) => {
        const c = await NbdClient.connect({ socket: k.socket }, { maxInFlight: 4 });
        try {
          expect(c.size).toBe(bytes.length);
          expect(c.readOnly).toBe(false);
          expect(c.canTrim).toBe(true);
          expect(c.canBlockStatus).toBe(true);
          expect(c.blockSizes).toEqual({ min: 512, preferred: 4096, max: MiB });
          const ranges: [number, number][] = [
            [0, 1],
            [511, 2],
            [4095, 4099],
            [MiB - 3, 3 * MiB + 11], // several max-size requests, unaligned ends
            [bytes.length - 5, 5], // the unaligned tail of the export
            [12345, 0],
          ];
          for (let i = 0; i < 20; i++) {
            const off = Math.floor(Math.random() * (bytes.length - 1));
            ranges.push([off, Math.floor(Math.random() * Math.min(2 * MiB, bytes.length - off))]);
          }
          const got = await Promise.all(ranges.map(([o, l]) => c.pread(o, l)));
          ranges.forEach(([o, l], i) => expect(got[i]!.equals(bytes.subarray(o, o + l)), `read ${o}+${l}`).toBe(true));
          await expect(c.pread(bytes.length - 1, 2)).rejects.toThrow(/outside the \d+-byte export/);
        } finally {
          await c.close();
        }
      });
    });
  });

  it('finds holes where nbdinfo --map finds them', async () => {
    await needPrograms('nbdkit', 'nbdinfo');
    await withTmpDir('nbd', async (dir) => {
      // An export size that is no multiple of 512: the tail must work too.
      const size = 64 * MiB + 100;
      const file = await sparseImage(dir, size, [
        [0, 4096],
        [3 * MiB + 100, 200 * 1024],
        [40 * MiB, 5 * MiB],
        [size - 5000, 5000],
      ]);
      const bytes = await readFile(file);
      await withNbdkit(dir, ['file', file], async (k) => {
        const c = await NbdClient.connect({ socket: k.socket });
        try {
          const ours: NbdExtent[] = [];
          // A small chunk forces many block status requests whose answers must join up.
          for await (const e of c.extents({ chunk: 3 * MiB + 1 })) ours.push(e);
          expect(ours).toEqual(await nbdinfoMap(k.uri));
          expect(ours.filter((e) => e.hole).length).toBeGreaterThanOrEqual(3);
          const one = await c.blockStatus(40 * MiB + 1, 100);
          expect(one).toEqual([{ offset: 40 * MiB + 1, length: 100, hole: false, zero: false }]);
          expect((await c.pread(size - 4999, 4999)).equals(bytes.subarray(size - 4999))).toBe(true);
        } finally {
          await c.close();
        }
      });
    });
  });

  it('writes and trims through the cow overlay, then reads both back; the source stays as it was', async () => {
    await needPrograms('nbdkit', 'nbdcopy');
    await withTmpDir('nbd', async (dir) => {
      const src = join(dir, 'src.img');
      const original = randomBytes(8 * MiB);
      await writeFile(src, original);
      const ov = await openOverlay(src, { workDir: dir });
      try {
        const c = await NbdClient.connect({ socket: ov.socket });
        try {
          expect(c.canTrim).toBe(true);
          const patch = randomBytes(3 * MiB + 5);
          await c.pwrite(MiB + 3, patch);
          await c.trim(6 * MiB, MiB);
          await c.flush();
          expect((await c.pread(MiB + 3, patch.length)).equals(patch)).toBe(true);
          expect((await c.pread(6 * MiB, MiB)).equals(Buffer.alloc(MiB))).toBe(true);
          const trimmed = await c.blockStatus(6 * MiB, MiB);
          expect(trimmed.every((e) => e.zero)).toBe(true);
          // A second client (libnbd) sees the same overlay content.
          const back = join(dir, 'back.img');
          await execa('nbdcopy', [ov.uri, back]);
          const expected = Buffer.from(original);
          patch.copy(expected, MiB + 3);
          expected.fill(0, 6 * MiB, 7 * MiB);
          expect((await readFile(back)).equals(expected)).toBe(true);
        } finally {
          await c.close();
        }
      } finally {
        await ov.close();
      }
      expect((await readFile(src)).equals(original)).toBe(true);
    });
  });

  it('turns a server error into a P2vError naming the command, offset and errno, and keeps the connection', async () => {
    await needPrograms('nbdkit');
    await withTmpDir('nbd', async (dir) => {
      const trigger = join(dir, 'inject');
      const args = [
        '--filter=error',
        'memory',
        '16M',
        'error-pread=EIO',
        'error-pread-rate=1',
        `error-pread-file=${trigger}`,
      ];
      await withNbdkit(dir, args, async (k) => {
        const c = await NbdClient.connect({ socket: k.socket });
        try {
          await c.pwrite(0, Buffer.alloc(4096, 7));
          await writeFile(trigger, '');
          const e = await rejection(c.pread(4 * MiB + 512, 8192));
          expect(e.code).toBe('NBD');
          expect(e.message).toMatch(/^NBD read of 8192 bytes at offset 4194816 failed: EIO \(input\/output error\)/);
          expect(e.hint).toMatch(/bad sector/);
          await rm(trigger);
          expect((await c.pread(0, 4096)).equals(Buffer.alloc(4096, 7))).toBe(true);
        } finally {
          await c.close();
        }
      });
    });
  });

  it('rejects every pending request when nbdkit dies mid-stream, and later calls too', async () => {
    await needPrograms('nbdkit');
    await withTmpDir('nbd', async (dir) => {
      const k = await startNbdkit(dir, ['--filter=delay', 'memory', '64M', 'rdelay=2']);
      try {
        const c = await NbdClient.connect({ socket: k.socket }, { maxInFlight: 4 });
        const reads = Array.from({ length: 10 }, (_, i) => c.pread(i * MiB, MiB));
        const settled = Promise.allSettled(reads);
        await new Promise((r) => setTimeout(r, 300));
        k.child.kill('SIGKILL');
        const results = await settled;
        expect(results.every((r) => r.status === 'rejected')).toBe(true);
        const reasons = results.map((r) => (r as PromiseRejectedResult).reason as unknown);
        expect(reasons.every((e) => isP2vError(e, 'NBD'))).toBe(true);
        expect((reasons[0] as Error).message).toMatch(
          /lost the connection to the NBD server at .*nbdkit-\d+\.sock with 10 requests pending/,
        );
        await expect(c.pread(0, 1)).rejects.toThrow(/lost the connection/);
        await c.close();
      } finally {
        await k.stop();
      }
    });
  });

  it('copes with servers that offer less: no structured replies, no fixed newstyle, read-only', async () => {
    await needPrograms('nbdkit');
    await withTmpDir('nbd', async (dir) => {
      const file = await sparseImage(dir, 4 * MiB, [[MiB, 4096]]);
      const bytes = await readFile(file);
      // --no-sr: simple replies only, so block status is unavailable and all is data.
      await withNbdkit(dir, ['--no-sr', '-r', 'file', file], async (k) => {
        const c = await NbdClient.connect({ socket: k.socket });
        try {
          expect(c.canBlockStatus).toBe(false);
          expect(c.readOnly).toBe(true);
          expect((await c.pread(MiB - 10, 5000)).equals(bytes.subarray(MiB - 10, MiB + 4990))).toBe(true);
          const all: NbdExtent[] = [];
          for await (const e of c.extents()) all.push(e);
          expect(all).toEqual([{ offset: 0, length: 4 * MiB, hole: false, zero: false }]);
          const e = await rejection(c.pwrite(0, Buffer.alloc(1)));
          expect(e.message).toMatch(/read-only/);
        } finally {
          await c.close();
        }
      });
      // Handshake flags masked to 0: unfixed newstyle, only NBD_OPT_EXPORT_NAME.
      await withNbdkit(dir, ['--mask-handshake=0', 'file', file], async (k) => {
        const c = await NbdClient.connect({ socket: k.socket });
        try {
          expect(c.size).toBe(4 * MiB);
          expect(c.canBlockStatus).toBe(false);
          expect((await c.pread(MiB, 4096)).equals(bytes.subarray(MiB, MiB + 4096))).toBe(true);
        } finally {
          await c.close();
        }
      });
      await withNbdkit(dir, ['--oldstyle', 'file', file], async (k) => {
        await expect(NbdClient.connect({ socket: k.socket })).rejects.toThrow(/old-style handshake/);
      });
    });
  });

  it('interoperates with qemu-nbd, which answers sparse reads with hole chunks', async () => {
    await needPrograms('qemu-nbd', 'nbdinfo');
    await withTmpDir('nbd', async (dir) => {
      const file = await sparseImage(dir, 16 * MiB, [
        [MiB, 8192],
        [9 * MiB + 3, 100000],
      ]);
      const bytes = await readFile(file);
      const q = await startQemuNbd(dir, file);
      try {
        const c = await NbdClient.connect({ socket: q.socket });
        try {
          expect(c.size).toBe(16 * MiB);
          expect(c.canBlockStatus).toBe(true);
          // Each read spans data and holes, so the reply mixes data and hole chunks.
          for (const [o, l] of [
            [0, 4 * MiB],
            [MiB + 4000, 9 * MiB],
            [9 * MiB, 7 * MiB],
          ] as const) {
            expect((await c.pread(o, l)).equals(bytes.subarray(o, o + l)), `read ${o}+${l}`).toBe(true);
          }
          const ours: NbdExtent[] = [];
          for await (const e of c.extents()) ours.push(e);
          expect(ours).toEqual(await nbdinfoMap(q.uri));
          const patch = randomBytes(3000);
          await c.pwrite(5 * MiB - 1000, patch);
          await c.flush();
          expect(
            (await c.pread(5 * MiB - 1500, 4000)).equals(Buffer.concat([Buffer.alloc(500), patch, Buffer.alloc(500)])),
          ).toBe(true);
        } finally {
          await c.close();
        }
      } finally {
        await q.stop();
      }
    });
  });

  it("asks for the named export and reports a refusal with the server's reason", async () => {
    await needPrograms('nbdkit');
    await withTmpDir('nbd', async (dir) => {
      await withNbdkit(
        dir,
        ['--filter=exportname', 'memory', '1M', 'exportname=disk', 'exportname-strict=true'],
        async (k) => {
          const e = await rejection(NbdClient.connect({ socket: k.socket }, { exportName: 'other' }));
          expect(e.code).toBe('NBD');
          expect(e.message).toMatch(/^NBD server refused export "other": no such export/);
          const c = await NbdClient.connect({ socket: k.socket }, { exportName: 'disk' });
          expect(c.size).toBe(MiB);
          await c.close();
        },
      );
    });
  });

  it('says clearly when nothing listens on the socket', async () => {
    const e = await rejection(NbdClient.connect({ socket: '/nonexistent/p2v.sock' }));
    expect(e.code).toBe('NBD');
    expect(e.message).toBe('cannot connect to NBD server at /nonexistent/p2v.sock: ENOENT');
  });
});
