/**
 * The device map end to end, through the real p2v-export: a small Debian
 * guest whose fstab and grub.cfg say /dev/sda is exported from a disk image
 * file and from a read-only loop device over it (live name loopN, as a live
 * image sees a disk under another name than the guest did). Both must come
 * out with fstab and root= by UUID. Then a two-disk guest whose fstab names
 * sda1 and sdb1 with the same types and nothing saying which is which: the
 * export must stop before sending anything, and go through with --map-device.
 */
import { access, readFile, writeFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { buildSampleDisk, type SampleDisk } from '../../lib/sample-disk.js';
import { cliArgv } from '../helpers/cli.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import {
  expectNoLeftovers,
  expectPipelineOk,
  sh,
  sha256File,
  shellPipeline,
  tool,
  withMount,
  withOffsetLoop,
} from '../e2e/support.js';
import { MOUNT_PATH_PROGRAMS } from '../exporter/mount-fixture.js';

const DATA_UUID = '0d1e2f30-4152-4637-a8b9-cadbecfd0e1f';

/** Export `disk` (plus `more`) to a raw image with p2v-import and return the root fs's fstab and grub.cfg. */
async function exportAndRead(
  dir: string,
  s: SampleDisk,
  disk: string,
  name: string,
): Promise<{ fstab: string; grub: string; stderr: string }> {
  const raw = join(dir, `raw-${name}`);
  const r = await shellPipeline(
    `${tool('p2v-export')} ${sh('--disk', disk, '--hypervisor', 'kvm', '--ovf', '--progress', 'none')}` +
      ` | ${tool('p2v-import')} ${sh('--staging', join(dir, 'staging'), '--name', name, '--raw', raw, '--progress', 'none')}`,
    { TMPDIR: dir },
  );
  expectPipelineOk(r);
  const img = join(raw, `${name}-disk0.raw`);
  return withOffsetLoop(
    img,
    s.rootOffset,
    s.rootSize,
    (dev) =>
      withMount(
        dev,
        join(dir, `mnt-${name}`),
        async (root) => ({
          fstab: await readFile(join(root, 'etc/fstab'), 'utf8'),
          grub: await readFile(join(root, 'boot/grub/grub.cfg'), 'utf8'),
          stderr: r.stderr,
        }),
        { readOnly: true },
      ),
    { readOnly: true },
  );
}

describe('p2v-export maps the guest’s own device names, whatever the live system calls the disk', () => {
  it('from an image file and from a loop device: fstab and root= by UUID, the source untouched', async () => {
    needRoot();
    await needPrograms(...MOUNT_PATH_PROGRAMS, 'qemu-img');
    await withTmpDir('devmap', async (dir) => {
      const img = join(dir, 'guest.img');
      const s = await buildSampleDisk({ path: img, sizeMiB: 96, swapMiB: 8, fillerMiB: 0 });
      const before = await sha256File(img);
      const expectMapped = (got: { fstab: string; grub: string }) => {
        expect(got.fstab).toContain(`UUID=${s.rootUuid}\t/\text4`);
        expect(got.fstab).toContain(`UUID=${s.swapUuid}\tnone\tswap`);
        expect(got.fstab).not.toMatch(/^\/dev\/sd/m);
        expect(got.grub).toContain(`root=UUID=${s.rootUuid} ro`);
        expect(got.grub).not.toContain('root=/dev/sda');
      };
      expectMapped(await exportAndRead(dir, s, img, 'fromfile'));

      const loop = (await execa('losetup', ['--find', '--show', '--read-only', img])).stdout.trim();
      try {
        expect(loop).toMatch(/^\/dev\/loop\d+$/);
        const got = await exportAndRead(dir, s, loop, 'fromloop');
        expectMapped(got);
        expect(got.stderr).not.toMatch(/none of the exported disks|cannot tell/);
      } finally {
        await execa('losetup', ['-d', loop], { reject: false });
      }
      expect(await sha256File(img)).toBe(before);
      await expectNoLeftovers(dir);
    });
  });

  it('two disks that both fit sda1 and sdb1: refused before anything is written, accepted with --map-device', async () => {
    needRoot();
    await needPrograms(...MOUNT_PATH_PROGRAMS);
    await withTmpDir('devmap', async (dir) => {
      const img = join(dir, 'guest.img');
      const s = await buildSampleDisk({ path: img, sizeMiB: 96, swapMiB: 8, bootMiB: 16, fillerMiB: 0 });
      // / by UUID (no root evidence), /boot and /srv by kernel name, both ext4 partition 1.
      await withOffsetLoop(img, s.rootOffset, s.rootSize, (dev) =>
        withMount(dev, join(dir, 'edit'), (root) =>
          writeFile(
            join(root, 'etc/fstab'),
            `UUID=${s.rootUuid}\t/\text4\terrors=remount-ro\t0\t1\n/dev/sda1\t/boot\text4\tdefaults\t0\t2\n` +
              `UUID=${s.swapUuid}\tnone\tswap\tsw\t0\t0\n/dev/sdb1\t/srv\text4\tdefaults\t0\t2\n`,
          ),
        ),
      );
      const data = join(dir, 'data.img');
      await writeFile(data, '');
      await truncate(data, 32 << 20);
      await execa('sfdisk', ['-q', data], { input: 'label: dos\nstart=2048, type=83\n' });
      await execa('mkfs.ext4', ['-q', '-F', '-U', DATA_UUID, '-E', `offset=${1 << 20}`, data, `${31 * 1024}k`]);

      const out = join(dir, 'out.ova');
      const exp = (...extra: string[]) =>
        execa(
          cliArgv('p2v-export')[0]!,
          [...cliArgv('p2v-export').slice(1), '--disk', img, '--disk', data, ...extra, '--progress', 'none'],
          { reject: false, env: { TMPDIR: dir } },
        );
      const refused = await exp('-o', out);
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toContain(
        'p2v-export: cannot tell which exported disk the guest calls /dev/sda (/etc/fstab: /dev/sda1 on /boot): disks 0 and 1 both fit, ' +
          'nor /dev/sdb (/etc/fstab: /dev/sdb1 on /srv): disks 0 and 1 both fit',
      );
      expect(refused.stderr).toMatch(/hint: say it with --map-device \/dev\/sda=0 --map-device \/dev\/sdb=0 /);
      await expect(access(out)).rejects.toThrow();
      await expect(access(`${out}.partial`)).rejects.toThrow();

      const bad = await exp('--map-device', '/dev/sda1=0', '--dry-run');
      expect(bad.exitCode).toBe(2);
      expect(bad.stderr).toContain('--map-device: /dev/sda1 is a partition, not a disk');

      const ok = await exp('--map-device', '/dev/sda=0', '--dry-run');
      expect(ok.exitCode, ok.stderr).toBe(0);
      expect(ok.stdout).toContain(
        `-/dev/sda1\t/boot\text4\tdefaults\t0\t2\n+UUID=${s.boot!.uuid}\t/boot\text4\tdefaults\t0\t2`,
      );
      expect(ok.stdout).toContain(
        `-/dev/sdb1\t/srv\text4\tdefaults\t0\t2\n+UUID=${DATA_UUID}\t/srv\text4\tdefaults\t0\t2`,
      );
      // With /boot mounted, grub.cfg's root=/dev/sda2 agrees with the root found, and is mapped too.
      expect(ok.stdout).toContain(`root=UUID=${s.rootUuid} ro`);
      await expectNoLeftovers(dir);
    });
  });
});
