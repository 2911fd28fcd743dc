import { copyFile, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { initramfsDrivers } from '../../fixups/initramfs-drivers.js';
import { listInitramfs } from '../../guest/initramfs.js';
import { applyFixups, planFixups } from '../../fixups/runner.js';
import { isP2vError } from '../../lib/errors.js';
import { pendingExitActions } from '../../lib/exit-actions.js';
import { which } from '../../lib/run.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import {
  DEBIAN_KERNEL,
  INITRAMFS_TOOLS_MODULES_DEFAULT,
  RHEL_KERNEL,
  context,
  debianInspection,
  debianTree,
  modulesDep,
  rhelInspection,
  rhelTree,
  withInitrds,
  writeTree,
} from './guests.js';
import { buildInitramfs, mainMembers } from './initramfs-images.js';

/** Whether an ELF64 executable asks for a dynamic loader (a PT_INTERP program header). */
function hasInterpreter(elf: Buffer): boolean {
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const size = elf.readUInt16LE(0x36);
  const count = elf.readUInt16LE(0x38);
  for (let i = 0; i < count; i++) if (elf.readUInt32LE(phoff + i * size) === 3) return true;
  return false;
}

const VIRTIO = [
  'drivers/block/virtio_blk.ko',
  'drivers/scsi/virtio_scsi.ko',
  'drivers/virtio/virtio_pci.ko',
  'drivers/net/virtio_net.ko',
];

async function debianGuest(root: string, work: string, modules: string[]): Promise<void> {
  await writeTree(root, debianTree());
  await buildInitramfs(work, join(root, `boot/initrd.img-${DEBIAN_KERNEL}`), {
    members: mainMembers(DEBIAN_KERNEL, modules),
    compression: 'zstd',
    early: true,
  });
}

describe('initramfs-drivers', () => {
  it('nothing to do when every virtio driver is in the initramfs or built in', async () => {
    await withTmpDir('ird', async (dir) => {
      const root = join(dir, 'root');
      await debianGuest(
        root,
        join(dir, 'work'),
        VIRTIO.filter((m) => !m.includes('virtio_pci')),
      );
      await writeTree(root, {
        [`/lib/modules/${DEBIAN_KERNEL}/modules.builtin`]: 'kernel/drivers/virtio/virtio_pci.ko\n',
      });
      const plan = await initramfsDrivers.plan(context(root, await withInitrds(root, debianInspection())));
      expect(plan.changes).toEqual([]);
    });
  });

  it('Debian: missing modules go to /etc/initramfs-tools/modules and update-initramfs runs in a chroot', async () => {
    await withTmpDir('ird', async (dir) => {
      const root = join(dir, 'root');
      await debianGuest(root, join(dir, 'work'), ['drivers/net/virtio_net.ko.xz', 'drivers/virtio/virtio_pci.ko']);
      const plan = await initramfsDrivers.plan(context(root, await withInitrds(root, debianInspection())));
      expect(plan.changes).toEqual([
        {
          kind: 'write',
          path: '/etc/initramfs-tools/modules',
          before: INITRAMFS_TOOLS_MODULES_DEFAULT,
          after: INITRAMFS_TOOLS_MODULES_DEFAULT + 'virtio_blk\nvirtio_scsi\n',
          mode: 0o644,
        },
        {
          kind: 'chroot',
          argv: ['update-initramfs', '-u', '-k', DEBIAN_KERNEL],
          reason: `initramfs of ${DEBIAN_KERNEL} lacks virtio_blk, virtio_scsi`,
        },
      ]);
      expect(plan.summary).toEqual([`/boot/initrd.img-${DEBIAN_KERNEL}: rebuilt with virtio_blk, virtio_scsi`]);
    });
  });

  it('RHEL: dracut gets a conf.d file and --add-drivers for the xen drivers', async () => {
    await withTmpDir('ird', async (dir) => {
      const root = join(dir, 'root');
      await writeTree(root, rhelTree());
      await writeTree(root, { [`/lib/modules/${RHEL_KERNEL}/modules.dep`]: modulesDep(RHEL_KERNEL) });
      await buildInitramfs(join(dir, 'work'), join(root, `boot/initramfs-${RHEL_KERNEL}.img`), {
        members: mainMembers(
          RHEL_KERNEL,
          VIRTIO.map((m) => m + '.xz'),
        ),
        compression: 'xz',
      });
      const plan = await initramfsDrivers.plan(
        context(root, await withInitrds(root, rhelInspection()), { hypervisor: 'xen-pvm' }),
      );
      expect(plan.changes).toEqual([
        {
          kind: 'write',
          path: '/etc/dracut.conf.d/90-p2v.conf',
          before: null,
          after:
            '# Written by ganeti-p2v: drivers of the Ganeti xen-pvm instance.\nadd_drivers+=" xen-blkfront xen-netfront "\n',
          mode: 0o644,
        },
        {
          kind: 'chroot',
          argv: [
            'dracut',
            '-f',
            '--no-hostonly',
            '--add-drivers',
            'xen-blkfront xen-netfront',
            `/boot/initramfs-${RHEL_KERNEL}.img`,
            RHEL_KERNEL,
          ],
          reason: `initramfs of ${RHEL_KERNEL} lacks xen-blkfront, xen-netfront`,
        },
      ]);
    });
  });

  it('refuses when the kernel has no such module, or the guest has no tool', async () => {
    await withTmpDir('ird', async (dir) => {
      const root = join(dir, 'root');
      await debianGuest(root, join(dir, 'work'), []);
      await writeTree(root, { [`/lib/modules/${DEBIAN_KERNEL}/modules.dep`]: 'kernel/drivers/ata/ahci.ko:\n' });
      const e1 = await initramfsDrivers
        .plan(context(root, await withInitrds(root, debianInspection())))
        .catch((x: unknown) => x);
      expect(isP2vError(e1, 'FIXUP')).toBe(true);
      expect((e1 as Error).message).toBe(
        `kernel ${DEBIAN_KERNEL} has no virtio_blk, virtio_scsi, virtio_pci, virtio_net driver (not built in, no module in /lib/modules/${DEBIAN_KERNEL})`,
      );
      await writeTree(root, { [`/lib/modules/${DEBIAN_KERNEL}/modules.dep`]: modulesDep(DEBIAN_KERNEL) });
      await rm(join(root, 'usr/sbin/update-initramfs'));
      const e2 = await initramfsDrivers
        .plan(context(root, await withInitrds(root, debianInspection())))
        .catch((x: unknown) => x);
      expect(isP2vError(e2, 'FIXUP')).toBe(true);
      expect((e2 as Error).message).toMatch(/the guest has no initramfs-tools to rebuild it$/);
      expect((e2 as { hint?: string }).hint).toBeTruthy();
    });
  });

  it('refuses a kernel whose initramfs is missing when the drivers are not built in', async () => {
    await withTmpDir('ird', async (root) => {
      await writeTree(root, debianTree());
      await writeTree(root, {
        [`/lib/modules/${DEBIAN_KERNEL}/modules.builtin`]:
          'kernel/drivers/block/virtio_blk.ko\nkernel/drivers/scsi/virtio_scsi.ko\nkernel/drivers/virtio/virtio_pci.ko\n',
      });
      const e = await initramfsDrivers
        .plan(context(root, await withInitrds(root, debianInspection())))
        .catch((x: unknown) => x);
      expect(isP2vError(e, 'FIXUP')).toBe(true);
      expect((e as Error).message).toBe(
        `kernel ${DEBIAN_KERNEL} has no initramfs, and virtio_net is not built into it`,
      );
    });
  });

  it('a kernel without /lib/modules is skipped with a warning', async () => {
    await withTmpDir('ird', async (root) => {
      const insp = debianInspection();
      insp.os!.kernels[0]!.hasModules = false;
      const ctx = context(root, insp);
      expect((await initramfsDrivers.plan(ctx)).changes).toEqual([]);
      expect(ctx.log.lines).toEqual([
        `p2v-export: warning: kernel ${DEBIAN_KERNEL} has no /lib/modules/${DEBIAN_KERNEL}: not checked (it cannot boot anyway)`,
      ]);
    });
  });

  it('rebuilds for real in a chroot (busybox + a stand-in update-initramfs), then unmounts', async () => {
    needRoot();
    await needPrograms('busybox', 'chroot', 'mount', 'umount');
    await withTmpDir('ird', async (dir) => {
      const root = join(dir, 'root');
      await debianGuest(root, join(dir, 'work'), []);
      // What the rebuilt image will be: the real tool is replaced by a script
      // that checks what it must see (the modules list, /proc mounted) and
      // installs a prepared image.
      await buildInitramfs(join(dir, 'work2'), join(root, 'boot/prepared.img'), {
        members: mainMembers(DEBIAN_KERNEL, VIRTIO),
        compression: 'gzip',
      });
      await writeTree(root, {
        '/usr/sbin/update-initramfs': {
          text: `#!/bin/sh
set -e
[ "$1 $2 $3" = "-u -k ${DEBIAN_KERNEL}" ] || { echo "bad arguments: $*" >&2; exit 2; }
/bin/busybox grep -qx virtio_blk /etc/initramfs-tools/modules
/bin/busybox test -e /proc/self/status
/bin/busybox test -c /dev/null
echo "update-initramfs: Generating /boot/initrd.img-$3"
/bin/busybox cp /boot/prepared.img /boot/initrd.img-$3
`,
          mode: 0o755,
        },
      });
      await writeTree(root, { '/bin/sh': { symlink: 'busybox' } });
      const busybox = (await which('busybox'))!;
      if (hasInterpreter(await readFile(busybox))) {
        throw new Error(`${busybox} is dynamically linked; the chroot test needs: apt-get install busybox-static`);
      }
      await copyFile(busybox, join(root, 'bin/busybox'));
      const ctx = context(root, await withInitrds(root, debianInspection()));
      const planned = await planFixups(ctx, [initramfsDrivers]);
      const pendingBefore = pendingExitActions().length;
      const report = await applyFixups(ctx, planned);
      expect(report.changes).toBe(2);
      expect(ctx.log.lines).toContain(
        `p2v-export: initramfs-drivers: ran in the guest: update-initramfs -u -k ${DEBIAN_KERNEL} (initramfs of ${DEBIAN_KERNEL} lacks virtio_blk, virtio_scsi, virtio_pci, virtio_net)`,
      );
      expect(ctx.log.lines).toContain(`p2v-export:   | update-initramfs: Generating /boot/initrd.img-${DEBIAN_KERNEL}`);
      const mounts = await readFile('/proc/self/mountinfo', 'utf8');
      expect(mounts).not.toContain(root);
      expect(pendingExitActions().length).toBe(pendingBefore);
      expect(await listInitramfs(join(root, `boot/initrd.img-${DEBIAN_KERNEL}`))).toEqual(
        mainMembers(DEBIAN_KERNEL, VIRTIO),
      );
      expect((await initramfsDrivers.plan(context(root, await withInitrds(root, debianInspection())))).changes).toEqual(
        [],
      );
    });
  });
});
