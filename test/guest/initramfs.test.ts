import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CpioError, CpioScanner, listCpio } from '../../lib/cpio.js';
import { compressionOf, listInitramfs } from '../../guest/initramfs.js';
import { isP2vError } from '../../lib/errors.js';
import { withTmpDir } from '../helpers/tmp.js';
import { buildInitramfs, mainMembers, type ImageCompression } from '../fixups/initramfs-images.js';

const V = '6.1.0-18-amd64';
const MODS = ['drivers/block/virtio_blk.ko', 'drivers/net/virtio_net.ko.xz', 'drivers/block/xen-blkfront.ko.zst'];
const EARLY = ['kernel/x86/microcode/GenuineIntel.bin'];

describe('cpio newc decoder', () => {
  it('lists an archive made by cpio, fed whole or one byte at a time', async () => {
    await withTmpDir('cpio', async (dir) => {
      const img = join(dir, 'plain.cpio');
      const members = mainMembers(V, MODS);
      await buildInitramfs(dir, img, { members, compression: 'none' });
      const data = await readFile(img);
      expect(listCpio(data).map((e) => e.name)).toEqual(members);
      const names: string[] = [];
      const s = new CpioScanner((e) => names.push(e.name));
      for (let i = 0; i < data.length; i++) s.push(data.subarray(i, i + 1));
      s.end();
      expect(names).toEqual(members);
      expect(s.archives).toBe(1);
      expect(listCpio(data).find((e) => e.name === 'init')).toEqual({ name: 'init', mode: 0o100644, size: 5 });
    });
  });

  it('rejects truncated and foreign data', async () => {
    await withTmpDir('cpio', async (dir) => {
      const img = join(dir, 'plain.cpio');
      await buildInitramfs(dir, img, { members: mainMembers(V, MODS), compression: 'none' });
      const data = await readFile(img);
      expect(() => listCpio(data.subarray(0, 300))).toThrow(CpioError);
      expect(() => listCpio(Buffer.from('070707' + '0'.repeat(200)))).toThrow(/not a newc cpio header/);
      const bad = Buffer.from(data);
      bad.write('0000zz00', 6 + 11 * 8, 'latin1');
      expect(() => listCpio(bad)).toThrow(/bad cpio header field/);
    });
  });

  it('knows compression magics', () => {
    expect(compressionOf(Buffer.from([0x1f, 0x8b, 8, 0]))).toBe('gzip');
    expect(compressionOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(compressionOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]))).toBe('xz');
    expect(compressionOf(Buffer.from([0x02, 0x21, 0x4c, 0x18]))).toBe('lz4');
    expect(compressionOf(Buffer.from('070701'))).toBeNull();
  });
});

describe('initramfs images', () => {
  const cases: [ImageCompression, boolean][] = [
    ['gzip', true],
    ['zstd', true],
    ['xz', false],
    ['lz4', true],
    ['none', true],
  ];
  for (const [compression, early] of cases) {
    it(`${early ? 'early microcode + ' : ''}${compression} main archive`, async () => {
      await withTmpDir('initramfs', async (dir) => {
        const img = join(dir, 'initrd.img');
        const members = mainMembers(V, MODS);
        await buildInitramfs(dir, img, { members, compression, early });
        expect(await listInitramfs(img)).toEqual([...(early ? EARLY : []), ...members]);
      });
    });
  }

  it('a damaged compressed archive is an INSPECTION error', async () => {
    await withTmpDir('initramfs', async (dir) => {
      const img = join(dir, 'initrd.img');
      await buildInitramfs(dir, img, { members: mainMembers(V, MODS), compression: 'zstd', early: true });
      const data = await readFile(img);
      await writeFile(img, data.subarray(0, data.length - 40));
      const e = await listInitramfs(img).catch((x: unknown) => x);
      expect(isP2vError(e, 'INSPECTION')).toBe(true);
      await writeFile(img, Buffer.concat([data.subarray(0, 512), Buffer.from('garbage!')]));
      const e2 = await listInitramfs(img).catch((x: unknown) => x);
      expect(isP2vError(e2, 'INSPECTION')).toBe(true);
      expect((e2 as Error).message).toMatch(/holds data we cannot read at byte 512/);
    });
  });
});
