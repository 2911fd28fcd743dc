import { describe, expect, it } from 'vitest';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runText } from '../../../lib/run.js';
import {
  encodeTarHeader,
  lastNonZeroEnd,
  TAR_END,
  tarPadding,
  TarTail,
  chunkName,
  parseChunkName,
} from '../../../ovf/ova/index.js';
import { needPrograms } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';

describe('encodeTarHeader', () => {
  it('writes a USTAR header GNU tar lists and extracts', async () => {
    await needPrograms('tar');
    await withTmpDir('tarhdr', async (dir) => {
      const data = Buffer.from('hello, tar\n');
      const mtime = new Date('2024-01-02T03:04:05Z');
      const long = 'a'.repeat(60) + '/' + 'b'.repeat(80);
      const archive = Buffer.concat([
        encodeTarHeader({ name: 'hello.txt', size: data.length, mtime }),
        data,
        Buffer.alloc(tarPadding(data.length)),
        encodeTarHeader({ name: long, size: 0, mtime }),
        TAR_END,
      ]);
      await (await import('node:fs/promises')).writeFile(join(dir, 'a.tar'), archive);
      const list = await runText('tar', ['--utc', '-tvf', join(dir, 'a.tar')]);
      expect(list).toMatch(/^-rw-r--r-- root\/root\s+11 2024-01-02 03:04 hello\.txt$/m);
      expect(list).toContain(long);
      await runText('tar', ['-xf', join(dir, 'a.tar'), '-C', dir, 'hello.txt']);
      expect(await readFile(join(dir, 'hello.txt'), 'utf8')).toBe('hello, tar\n');
    });
  });

  it('stores 8 GiB and more in base-256, which GNU tar reads (a sparse 9 GiB member)', async () => {
    await needPrograms('tar');
    await withTmpDir('tarbig', async (dir) => {
      const size = 9 * 1024 ** 3 + 5;
      const h = encodeTarHeader({ name: 'big.vmdk', size });
      expect(h[124]).toBe(0x80);
      const path = join(dir, 'big.tar');
      const fh = await open(path, 'w');
      await fh.write(h, 0, 512, 0);
      await fh.truncate(512 + size + tarPadding(size) + 1024);
      await fh.close();
      const list = await runText('tar', ['-tvf', path]);
      expect(list).toMatch(new RegExp(`^-rw-r--r-- root/root\\s+${size} .* big\\.vmdk$`, 'm'));
    });
  });

  it('refuses names a tar header cannot hold', () => {
    expect(() => encodeTarHeader({ name: 'x'.repeat(101), size: 0 })).toThrow(/longer than 100 bytes/);
    expect(() => encodeTarHeader({ name: 'dé.vmdk', size: 0 })).toThrow(/printable ASCII/);
  });
});

describe('chunk names', () => {
  it('round-trips', () => {
    expect(chunkName('disk1.vmdk', 12)).toBe('disk1.vmdk.000000012');
    expect(parseChunkName('disk1.vmdk.000000012')).toEqual({ href: 'disk1.vmdk', index: 12 });
    expect(parseChunkName('disk1.vmdk.00000001')).toBeNull();
    expect(parseChunkName('disk1.vmdk')).toBeNull();
  });
});

describe('TarTail', () => {
  it('finds the last non-zero byte', () => {
    const b = Buffer.alloc(5000);
    expect(lastNonZeroEnd(b)).toBe(0);
    b[1234] = 1;
    expect(lastNonZeroEnd(b)).toBe(1235);
    b[4999] = 9;
    expect(lastNonZeroEnd(b)).toBe(5000);
  });

  it('sees the end marker only when 1024 zero bytes follow the last member', () => {
    const t = new TarTail();
    t.update(Buffer.alloc(1024, 1));
    t.update(Buffer.alloc(512));
    expect(t.hasEndMarker(1024)).toBe(false);
    t.update(Buffer.alloc(512));
    expect(t.hasEndMarker(1024)).toBe(true);
    t.update(Buffer.from([0, 0, 7]));
    expect(t.hasEndMarker(1024)).toBe(false);
  });
});
