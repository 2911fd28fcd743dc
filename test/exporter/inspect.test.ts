import { describe, expect, it } from 'vitest';
import { writeFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { inspect } from '../../exporter/inspect.js';
import { compareKernelVersions } from '../../guest/inspect/detect.js';
import { parseOsRelease } from '../../guest/os-release.js';
import { parseFstab } from '../../guest/references.js';
import { formatInspection } from '../../exporter/inspect-format.js';
import type { Inspection } from '../../guest/types.js';
import { memoryLogger } from '../../lib/log.js';
import { buildSampleDisk, SAMPLE_KERNEL } from '../../lib/sample-disk.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import { expectNoLeftovers, overlayAndExpose, sha256, MOUNT_PATH_PROGRAMS } from './mount-fixture.js';

const MACHINE: Inspection['machine'] = { cpus: 2, memoryMiB: 2048, nics: [{ name: 'eth0', mac: '52:54:00:12:34:56' }] };
const PROGRAMS = [...MOUNT_PATH_PROGRAMS];

describe('inspect', () => {
  it('finds the Debian 12 guest of the MBR sample disk exactly', async () => {
    needRoot();
    await needPrograms(...PROGRAMS);
    await withTmpDir('inspect', async (dir) => {
      const path = join(dir, 'disk.img');
      const s = await buildSampleDisk({ path, sizeMiB: 128, swapMiB: 16, fillerMiB: 1 });
      const before = await sha256(path);
      const x = await overlayAndExpose(path, dir);
      const log = memoryLogger();
      let i: Inspection;
      try {
        i = await inspect([{ source: path, exposed: x.disk, size: x.size }], { workDir: dir, machine: MACHINE, log });
      } finally {
        await x.close();
      }
      const mbr = s.diskId.slice(2);
      expect(i).toEqual({
        disks: [
          {
            index: 0,
            source: path,
            sourceName: 'sda',
            size: 128 * 1048576,
            partitionTable: 'dos',
            diskId: s.diskId,
            partitions: [
              {
                number: 1,
                start: s.rootOffset,
                size: s.rootSize,
                type: '83',
                partUuid: `${mbr}-01`,
                bootable: true,
                fsType: 'ext4',
                fsUuid: s.rootUuid,
                fsLabel: s.rootLabel,
                mountpoint: '/',
              },
              {
                number: 2,
                start: s.swapOffset,
                size: s.swapSize,
                type: '82',
                partUuid: `${mbr}-02`,
                bootable: false,
                fsType: 'swap',
                fsUuid: s.swapUuid,
                fsLabel: s.swapLabel,
                mountpoint: 'swap',
              },
            ],
          },
        ],
        os: {
          distro: 'debian',
          distroLike: [],
          version: '12',
          prettyName: 'Debian GNU/Linux 12 (bookworm)',
          hostname: 'p2v-sample',
          arch: 'x86_64',
          kernels: [
            {
              version: SAMPLE_KERNEL,
              vmlinuz: `/boot/vmlinuz-${SAMPLE_KERNEL}`,
              initrd: `/boot/initrd.img-${SAMPLE_KERNEL}`,
              hasModules: true,
              // What the image holds, read as the kernel unpacks it (the fixups decide from this).
              initrdContent: {
                modules: [
                  'ahci',
                  'ata_piix',
                  'ext4',
                  'sd_mod',
                  'virtio_blk',
                  'virtio_net',
                  'virtio_pci',
                  'virtio_scsi',
                ],
              },
            },
          ],
          initramfsTool: 'initramfs-tools',
          bootloader: 'grub2',
          grubConfigs: ['/boot/grub/grub.cfg'],
          blsEntries: false,
          initSystem: 'systemd',
          networkConfig: ['ifupdown'],
          root: { disk: 0, partition: 1 },
          deviceMap: {
            disks: [
              {
                guestDisk: 'sda',
                index: 0,
                evidence: '/etc/fstab: /dev/sda1 on /: the root filesystem inspection found',
              },
            ],
            undecided: [],
            conflicts: [],
          },
        },
        // sfdisk writes no boot code: a BIOS place (the MBR gap) but nothing installed, and no ESP.
        boot: {
          firmware: 'unknown',
          efiLoaders: [],
          biosBoot: { kind: 'mbr-gap', offset: 512, size: 1024 * 1024 - 512, installed: false },
          grubPc: false,
        },
        machine: MACHINE,
        warnings: [],
      });
      const text = formatInspection(i);
      expect(text).toContain('disk 0: ' + path + ' (sda), 128 MiB, MBR partition table ' + s.diskId);
      expect(text).toContain('operating system: Debian GNU/Linux 12 (bookworm) (debian 12), x86_64');
      expect(text).toContain(`kernels:          ${SAMPLE_KERNEL}`);
      expect(text).toContain(`mounted on /`);
      expect(await sha256(path)).toBe(before);
      await expectNoLeftovers(dir);
    });
  });

  it('maps UUID= fstab entries and a separate /boot on a GPT disk', async () => {
    needRoot();
    await needPrograms(...PROGRAMS);
    await withTmpDir('inspect', async (dir) => {
      const path = join(dir, 'gpt.img');
      const s = await buildSampleDisk({
        path,
        sizeMiB: 128,
        swapMiB: 8,
        bootMiB: 24,
        fillerMiB: 1,
        partitionTable: 'gpt',
        fstab: 'uuid',
      });
      const x = await overlayAndExpose(path, dir);
      let i: Inspection;
      try {
        i = await inspect([{ source: '/dev/nvme0n1', exposed: x.disk, size: x.size }], {
          workDir: dir,
          machine: MACHINE,
          log: memoryLogger(),
        });
      } finally {
        await x.close();
      }
      const d = i.disks[0]!;
      expect(d.partitionTable).toBe('gpt');
      expect(d.sourceName).toBe('nvme0n1');
      expect(d.diskId).toBe(s.diskId.toLowerCase());
      expect(d.partitions.map((p) => [p.number, p.start, p.size, p.type, p.fsType, p.fsUuid, p.mountpoint])).toEqual([
        [1, s.boot!.offset, s.boot!.size, '0FC63DAF-8483-4772-8E79-3D69D8477DE4', 'ext4', s.boot!.uuid, '/boot'],
        [2, s.rootOffset, s.rootSize, '0FC63DAF-8483-4772-8E79-3D69D8477DE4', 'ext4', s.rootUuid, '/'],
        [3, s.swapOffset, s.swapSize, '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F', 'swap', s.swapUuid, 'swap'],
      ]);
      const gpt = JSON.parse(String((await execa('sfdisk', ['--json', path])).stdout)).partitiontable;
      expect(d.partitions.map((p) => p.partUuid)).toEqual(
        gpt.partitions.map((p: { uuid: string }) => p.uuid.toLowerCase()),
      );
      // The kernel lives on the /boot partition: found only because /boot was mounted as fstab says.
      expect(i.os?.kernels.map((k) => k.version)).toEqual([SAMPLE_KERNEL]);
      expect(i.os?.root).toEqual({ disk: 0, partition: 2 });
      expect(i.os?.bootloader).toBe('grub2');
      // The live name (nvme0n1) plays no part: the guest calls its disk sda, and its grub.cfg says where / is.
      expect(i.os?.deviceMap.disks.map((m) => [m.guestDisk, m.index, m.evidence])).toEqual([
        ['sda', 0, '/boot/grub/grub.cfg: /dev/sda2: the root filesystem inspection found'],
      ]);
      expect(i.warnings).toEqual([]);
      await expectNoLeftovers(dir);
    });
  });

  it('reports data disks (whole-disk ext4, raw zeros) as no OS without throwing', async () => {
    needRoot();
    await needPrograms(...PROGRAMS);
    await withTmpDir('inspect', async (dir) => {
      const ext = join(dir, 'data.img');
      await truncate((await writeFile(ext, ''), ext), 32 * 1048576);
      await execa('mkfs.ext4', ['-q', '-F', '-L', 'data', '-U', '0b7f2a38-5e2c-4c0e-9d41-7a9f1c2d3e4f', ext]);
      const zero = join(dir, 'zero.img');
      await writeFile(zero, '');
      await truncate(zero, 8 * 1048576);
      const a = await overlayAndExpose(ext, dir);
      const b = await overlayAndExpose(zero, dir);
      let i: Inspection;
      try {
        i = await inspect(
          [
            { source: ext, exposed: a.disk, size: a.size },
            { source: zero, exposed: b.disk, size: 0 }, // unknown size: taken from the exposed file
          ],
          { workDir: dir, machine: MACHINE, log: memoryLogger() },
        );
      } finally {
        await b.close();
        await a.close();
      }
      expect(i.os).toBeUndefined();
      expect(i.disks).toEqual([
        {
          index: 0,
          source: ext,
          sourceName: 'sda',
          size: 32 * 1048576,
          partitionTable: 'none',
          partitions: [],
          wholeDiskFs: { fsType: 'ext4', fsUuid: '0b7f2a38-5e2c-4c0e-9d41-7a9f1c2d3e4f', fsLabel: 'data' },
        },
        { index: 1, source: zero, sourceName: 'sdb', size: 8 * 1048576, partitionTable: 'none', partitions: [] },
      ]);
      expect(formatInspection(i)).toContain('operating system: none found');
      await expectNoLeftovers(dir);
    });
  });

  it('lists extended and logical MBR partitions, probing only those that can hold a filesystem', async () => {
    needRoot();
    await needPrograms(...PROGRAMS);
    await withTmpDir('inspect', async (dir) => {
      const path = join(dir, 'ext.img');
      await writeFile(path, '');
      await truncate(path, 64 * 1048576);
      await execa('sfdisk', ['-q', path], {
        input:
          'label: dos\nlabel-id: 0x0badcafe\nstart=2048, size=20480, type=83\nstart=22528, type=5\nstart=24576, size=20480, type=83\n',
      });
      await execa('mkfs.ext4', ['-q', '-F', '-L', 'logical', '-E', `offset=${24576 * 512}`, path, '10240k']);
      const x = await overlayAndExpose(path, dir);
      let i: Inspection;
      try {
        i = await inspect([{ source: path, exposed: x.disk, size: x.size }], {
          workDir: dir,
          machine: MACHINE,
          log: memoryLogger(),
        });
      } finally {
        await x.close();
      }
      expect(i.os).toBeUndefined();
      expect(
        i.disks[0]!.partitions.map((p) => [p.number, p.start, p.size, p.type, p.partUuid, p.fsType, p.fsLabel]),
      ).toEqual([
        [1, 2048 * 512, 20480 * 512, '83', '0badcafe-01', undefined, undefined],
        [2, 22528 * 512, (131072 - 22528) * 512, '5', '0badcafe-02', undefined, undefined],
        [5, 24576 * 512, 20480 * 512, '83', '0badcafe-05', 'ext4', 'logical'],
      ]);
      await expectNoLeftovers(dir);
    });
  });

  it('warns and goes on when a candidate filesystem is corrupt, leaving nothing behind', async () => {
    needRoot();
    await needPrograms(...PROGRAMS);
    await withTmpDir('inspect', async (dir) => {
      const path = join(dir, 'disk.img');
      const s = await buildSampleDisk({ path, sizeMiB: 96, swapMiB: 8, fillerMiB: 0 });
      // Zero the group descriptors: blkid still sees ext4 (the superblock is intact) but mount refuses it.
      const { open } = await import('node:fs/promises');
      const fh = await open(path, 'r+');
      await fh.write(Buffer.alloc(4096), 0, 4096, s.rootOffset + 4096);
      await fh.close();
      const x = await overlayAndExpose(path, dir);
      try {
        const i = await inspect([{ source: path, exposed: x.disk, size: x.size }], {
          workDir: dir,
          machine: MACHINE,
          log: memoryLogger(),
        });
        expect(i.os).toBeUndefined();
        expect(i.disks[0]!.partitions[0]!.fsType).toBe('ext4');
        expect(i.warnings).toHaveLength(1);
        expect(i.warnings[0]).toMatch(/^the ext4 filesystem on sda partition 1 cannot be mounted: it is copied whole/);
      } finally {
        await x.close();
      }
      await expectNoLeftovers(dir);
    });
  });
});

describe('inspection parsers', () => {
  it('parses fstab with escapes and os-release with quoting', () => {
    expect(
      parseFstab(
        '# c\nUUID=ab /  ext4 errors=remount-ro 0 1\n/dev/sdb1 /srv/my\\040data xfs defaults\n\nproc /proc proc\n',
      ),
    ).toEqual([
      { spec: 'UUID=ab', file: '/', vfstype: 'ext4', options: ['errors=remount-ro'] },
      { spec: '/dev/sdb1', file: '/srv/my data', vfstype: 'xfs', options: ['defaults'] },
      { spec: 'proc', file: '/proc', vfstype: 'proc', options: ['defaults'] },
    ]);
    expect(
      parseOsRelease(
        'ID=rocky\nID_LIKE="rhel centos fedora"\nVERSION_ID=\'9.3\'\n# x\nPRETTY_NAME="Rocky \\"Blue\\" Linux"',
      ),
    ).toEqual({
      ID: 'rocky',
      ID_LIKE: 'rhel centos fedora',
      VERSION_ID: '9.3',
      PRETTY_NAME: 'Rocky "Blue" Linux',
    });
    expect(compareKernelVersions('6.1.0-18-amd64', '6.1.0-9-amd64')).toBeGreaterThan(0);
    expect(compareKernelVersions('5.10.0-28-amd64', '6.1.0-9-amd64')).toBeLessThan(0);
  });
});
