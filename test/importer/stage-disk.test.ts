import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { stageDisk } from '../../importer/stage-disk.js';
import type { OvfDisk, OvfFile } from '../../ovf/types.js';
import { memoryLogger } from '../../lib/log.js';
import { isP2vError } from '../../lib/errors.js';
import { needPrograms } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import { makeRawDisk, MiB, toStreamOptimized } from './fixtures.js';

const file: OvfFile = { id: 'file1', href: 'disk1.vmdk' };
const disk = (over: Partial<OvfDisk> = {}): OvfDisk => ({
  diskId: 'vmdisk1',
  fileRef: 'file1',
  format: 'vmdk-streamOptimized',
  controller: 'scsi',
  unit: 0,
  ...over,
});

async function stage(dir: string, src: string, d: OvfDisk, extra: { maxDiskSize?: number; file?: OvfFile } = {}) {
  const work = join(dir, 'work');
  await execa('mkdir', ['-p', work]);
  return stageDisk(createReadStream(src), {
    dir: work,
    index: 0,
    disk: d,
    file: extra.file ?? file,
    maxDiskSize: extra.maxDiskSize,
    logger: memoryLogger(),
  });
}

async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a failure');
}

describe('stageDisk', () => {
  it('decodes a qemu-img streamOptimized VMDK into an identical sparse raw file', async () => {
    await needPrograms('qemu-img');
    await withTmpDir('stage', async (dir) => {
      const raw = join(dir, 'src.raw');
      await makeRawDisk(raw, 16 * MiB);
      await toStreamOptimized(raw, join(dir, 'd.vmdk'));
      const s = await stage(dir, join(dir, 'd.vmdk'), disk({ capacity: 16 * MiB }));
      expect(s.capacity).toBe(16 * MiB);
      expect(s.dataBytes).toBe(4 * 65536);
      await execa('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', raw, s.path]);
      const st = await stat(s.path);
      expect(st.size).toBe(16 * MiB);
      // Holes stay holes: only the four data grains (plus filesystem slack) are allocated.
      expect(st.blocks * 512).toBeLessThan(1 * MiB);
    });
  });

  it("takes qemu-img's VMDKs that end without an end-of-stream marker", async () => {
    await needPrograms('qemu-img');
    await withTmpDir('stage', async (dir) => {
      const raw = join(dir, 'src.raw');
      await execa('truncate', ['-s', '32G', raw]);
      await execa('sh', ['-c', `head -c ${MiB} /dev/urandom | dd of=${raw} conv=notrunc status=none`]);
      await toStreamOptimized(raw, join(dir, 'd.vmdk'));
      const vmdk = await readFile(join(dir, 'd.vmdk'));
      expect(vmdk.subarray(vmdk.length - 512).every((b) => b === 0)).toBe(false);
      const s = await stage(dir, join(dir, 'd.vmdk'), disk({ capacity: 32 * 1024 * MiB }));
      await execa('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', raw, s.path]);
    });
  });

  it('takes the capacity from the image when the descriptor has none, and refuses a disagreement', async () => {
    await needPrograms('qemu-img');
    await withTmpDir('stage', async (dir) => {
      const raw = join(dir, 'src.raw');
      await makeRawDisk(raw, 8 * MiB);
      await toStreamOptimized(raw, join(dir, 'd.vmdk'));
      expect((await stage(dir, join(dir, 'd.vmdk'), disk())).capacity).toBe(8 * MiB);
      await execa('rm', ['-rf', join(dir, 'work')]);
      const e = await errorOf(stage(dir, join(dir, 'd.vmdk'), disk({ capacity: 4 * MiB })));
      expect(e.message).toBe('disk vmdisk1: the descriptor says 4194304 bytes but the image holds 8388608');
    });
  });

  it('refuses a disk above --disk-size before writing anything', async () => {
    await needPrograms('qemu-img');
    await withTmpDir('stage', async (dir) => {
      const raw = join(dir, 'src.raw');
      await makeRawDisk(raw, 8 * MiB);
      await toStreamOptimized(raw, join(dir, 'd.vmdk'));
      const e = await errorOf(stage(dir, join(dir, 'd.vmdk'), disk(), { maxDiskSize: 4 * MiB }));
      expect(isP2vError(e, 'POLICY')).toBe(true);
      expect(e.message).toBe(
        'disk vmdisk1 needs 8.0 MiB (8388608 bytes) but at most 4.0 MiB (4194304 bytes) is allowed',
      );
      expect(await readdir(join(dir, 'work'))).toEqual([]);
    });
  });

  it('converts monolithicSparse VMDK, qcow2, gzip and raw disks through qemu-img', async () => {
    await needPrograms('qemu-img', 'gzip');
    await withTmpDir('stage', async (dir) => {
      const raw = join(dir, 'src.raw');
      await makeRawDisk(raw, 8 * MiB, 3);
      await execa('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', raw, join(dir, 'm.vmdk')]);
      await execa('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, join(dir, 'q.qcow2')]);
      await execa('sh', ['-c', `gzip -c ${join(dir, 'q.qcow2')} > ${join(dir, 'q.qcow2.gz')}`]);
      const cases: [string, OvfDisk, OvfFile][] = [
        ['m.vmdk', disk({ format: 'vmdk-monolithicSparse' }), file],
        ['q.qcow2', disk({ format: 'qcow2', capacity: 8 * MiB }), file],
        ['q.qcow2.gz', disk({ format: 'qcow2' }), { ...file, compression: 'gzip' }],
        ['src.raw', disk({ format: 'raw', capacity: 8 * MiB }), file],
      ];
      for (const [name, d, f] of cases) {
        await execa('rm', ['-rf', join(dir, 'work')]);
        const s = await stage(dir, join(dir, name), d, { file: f });
        expect(s.capacity, name).toBe(8 * MiB);
        await execa('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', raw, s.path]);
        expect(await readdir(join(dir, 'work')), name).toEqual(['disk0.raw']);
      }
    });
  });

  it('refuses a qcow2 that points at a backing file (it would read host files)', async () => {
    await needPrograms('qemu-img');
    await withTmpDir('stage', async (dir) => {
      await makeRawDisk(join(dir, 'secret.raw'), 1 * MiB);
      await execa('qemu-img', [
        'create',
        '-q',
        '-f',
        'qcow2',
        '-b',
        join(dir, 'secret.raw'),
        '-F',
        'raw',
        join(dir, 'evil.qcow2'),
      ]);
      const e = await errorOf(stage(dir, join(dir, 'evil.qcow2'), disk({ format: 'qcow2' })));
      expect(e.message).toBe('disk vmdisk1 (disk1.vmdk) refers to a backing file, which an OVA must not do');
    });
  });

  it('refuses disks that are not what they claim, gzip bombs and descriptor-only VMDKs', async () => {
    await needPrograms('qemu-img', 'gzip');
    await withTmpDir('stage', async (dir) => {
      await makeRawDisk(join(dir, 'src.raw'), 2 * MiB);
      await execa('sh', ['-c', `head -c ${64 * MiB} /dev/zero | gzip -c > ${join(dir, 'bomb.gz')}`]);
      await execa('qemu-img', [
        'create',
        '-q',
        '-f',
        'vmdk',
        '-o',
        'subformat=monolithicFlat',
        join(dir, 'flat.vmdk'),
        '1M',
      ]);
      const cases: [string, OvfDisk, OvfFile, number | undefined, string][] = [
        [
          'src.raw',
          disk({ format: 'vmdk-streamOptimized' }),
          file,
          undefined,
          'disk vmdisk1 (disk1.vmdk) is not a VMDK image although the descriptor says so',
        ],
        [
          'src.raw',
          disk({ format: 'qcow2' }),
          file,
          undefined,
          'disk vmdisk1 (disk1.vmdk) is not a qcow2 image although the descriptor says so',
        ],
        [
          'src.raw',
          disk({ format: 'raw' }),
          { ...file, compression: 'gzip' },
          undefined,
          'disk vmdisk1 (disk1.vmdk) is marked gzip-compressed but is not gzip data',
        ],
        [
          'bomb.gz',
          disk({ format: 'raw' }),
          { ...file, compression: 'gzip' },
          1 * MiB,
          'disk vmdisk1 (disk1.vmdk) is larger than the 1048576 bytes allowed for it',
        ],
        [
          'flat.vmdk',
          disk({ format: 'vmdk-other' }),
          file,
          undefined,
          'disk vmdisk1 (disk1.vmdk) is a VMDK subformat that is not self-contained',
        ],
      ];
      for (const [name, d, f, max, message] of cases) {
        await execa('rm', ['-rf', join(dir, 'work')]);
        const e = await errorOf(stage(dir, join(dir, name), d, { file: f, maxDiskSize: max }));
        expect(e.message, name).toBe(message);
      }
    });
  });
});
