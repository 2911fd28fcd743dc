import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { open } from 'node:fs/promises';
import { sniffDiskFormat, geometryFor, parseDescriptor } from '../../../ovf/vmdk/index.js';
import { run } from '../../../lib/run.js';
import { needPrograms } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';

async function head(path: string, n = 4096): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(n);
    const { bytesRead } = await fh.read(b, 0, n, 0);
    return b.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

describe('sniffDiskFormat on images qemu-img creates', () => {
  const formats: [string, string[], string][] = [
    ['qcow2', ['-f', 'qcow2'], 'qcow2'],
    ['monolithicSparse vmdk', ['-f', 'vmdk'], 'vmdk-monolithicSparse'],
    ['streamOptimized vmdk', ['-f', 'vmdk', '-o', 'subformat=streamOptimized'], 'vmdk-streamOptimized'],
    ['vpc (VHD)', ['-f', 'vpc', '-o', 'subformat=fixed'], 'raw'],
    ['vdi', ['-f', 'vdi'], 'unknown'],
    ['raw', ['-f', 'raw'], 'raw'],
  ];
  for (const [name, args, expected] of formats) {
    it(name, async () => {
      await needPrograms('qemu-img');
      await withTmpDir('vmdk-sniff', async (dir) => {
        const p = join(dir, 'img');
        await run('qemu-img', ['create', ...args, p, '8M']);
        expect(sniffDiskFormat(await head(p))).toBe(expected);
      });
    });
  }

  it('tells a sparse VMDK by its flags when the head stops before the descriptor', async () => {
    await needPrograms('qemu-img');
    await withTmpDir('vmdk-sniff', async (dir) => {
      const so = join(dir, 'so.vmdk');
      const ms = join(dir, 'ms.vmdk');
      await run('qemu-img', ['create', '-f', 'vmdk', '-o', 'subformat=streamOptimized', so, '8M']);
      await run('qemu-img', ['create', '-f', 'vmdk', ms, '8M']);
      expect(sniffDiskFormat(await head(so, 512))).toBe('vmdk-streamOptimized');
      expect(sniffDiskFormat(await head(ms, 512))).toBe('vmdk-monolithicSparse');
    });
  });

  it('knows descriptor-only VMDKs, dynamic VHDs, archives and too-short heads', () => {
    expect(sniffDiskFormat(Buffer.from('# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n'))).toBe(
      'vmdk-other',
    );
    expect(sniffDiskFormat(Buffer.concat([Buffer.from('conectix'), Buffer.alloc(504)]))).toBe('unknown');
    const tar = Buffer.alloc(1024);
    tar.write('ustar', 257);
    expect(sniffDiskFormat(tar)).toBe('unknown');
    expect(sniffDiskFormat(Buffer.alloc(100))).toBe('unknown');
    expect(sniffDiskFormat(Buffer.alloc(512))).toBe('raw');
  });
});

describe('VMDK descriptor', () => {
  it('gives IDE and SCSI geometry the way VMware does, saturating the cylinders', () => {
    expect(geometryFor(8n * 2048n, 'ide')).toEqual({ cylinders: 17, heads: 16, sectors: 63 });
    expect(geometryFor(8n * 2048n, 'lsilogic')).toEqual({ cylinders: 2, heads: 255, sectors: 63 });
    expect(geometryFor(1n << 40n, 'ide').cylinders).toBe(16383);
    expect(geometryFor(1n << 40n, 'buslogic').cylinders).toBe(65535);
  });

  it("parses VMware's spacing and quoting", () => {
    const d = parseDescriptor(
      '# Disk DescriptorFile\r\nversion=1\r\nencoding="UTF-8"\r\nCID=fffffffe\r\nparentCID=ffffffff\r\ncreateType="streamOptimized"\r\n\r\n# Extent description\r\nRDONLY 41943040 SPARSE "generated-stream.vmdk"\r\n\r\nddb.adapterType = "lsilogic"\r\nddb.toolsInstallType = "4"\r\n',
    );
    expect(d.createType).toBe('streamOptimized');
    expect(d.fields.get('ddb.adapterType')).toBe('lsilogic');
    expect(d.extents).toEqual([
      { access: 'RDONLY', sectors: 41943040n, type: 'SPARSE', file: 'generated-stream.vmdk' },
    ]);
  });
});
