import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXUPS, annotationFor, applyFixups, planFixups, renderDryRun } from '../../fixups/runner.js';
import { isP2vError } from '../../lib/errors.js';
import { withTmpDir } from '../helpers/tmp.js';
import {
  DEBIAN_KERNEL,
  DEBIAN_ROOT_UUID,
  changedPaths,
  context,
  debianGrubCfg,
  debianInspection,
  debianTree,
  snapshot,
  writeTree,
  withInitrds,
} from './guests.js';
import { buildInitramfs, mainMembers } from './initramfs-images.js';

describe('fixup runner', () => {
  it('lists every fixup once, named like its file', () => {
    expect(FIXUPS.map((f) => f.name)).toEqual([
      'block-devices',
      'serial-console',
      'network-identity',
      'hostname',
      'ip-config',
      'uefi-fallback',
      'bios-boot',
      'initramfs-drivers',
      'selinux-relabel',
      'site-hooks',
    ]);
  });

  it('Debian 12 end to end: fixups touching the same file compose; re-planning finds nothing', async () => {
    await withTmpDir('runner', async (dir) => {
      const root = join(dir, 'root');
      await writeTree(root, debianTree());
      await buildInitramfs(join(dir, 'work'), join(root, `boot/initrd.img-${DEBIAN_KERNEL}`), {
        members: mainMembers(DEBIAN_KERNEL, [
          'drivers/block/virtio_blk.ko',
          'drivers/scsi/virtio_scsi.ko',
          'drivers/virtio/virtio_pci.ko',
          'drivers/net/virtio_net.ko',
        ]),
        compression: 'gzip',
        early: true,
      });
      const options = { hostname: 'web1', ip: '192.0.2.10/24', gateway: '192.0.2.1' };
      const ctx = context(root, await withInitrds(root, debianInspection()), options);
      const planned = await planFixups(ctx);
      expect(planned.map((p) => p.fixup)).toEqual([
        'block-devices',
        'serial-console',
        'network-identity',
        'hostname',
        'ip-config',
      ]);
      const before = await snapshot(root);
      const report = await applyFixups(ctx, planned);
      const after = await snapshot(root);
      expect(changedPaths(before, after)).toEqual([
        '/boot/grub/grub.cfg',
        '/etc/default/grub',
        '/etc/fstab',
        '/etc/hostname',
        '/etc/hosts',
        '/etc/initramfs-tools/conf.d/resume',
        '/etc/mailname',
        '/etc/network/interfaces',
        '/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service',
        '/etc/udev/rules.d/70-persistent-net.rules',
      ]);
      const tail = 'console=tty0 console=ttyS0,115200n8 net.ifnames=0 biosdevname=0';
      expect(await readFile(join(root, 'boot/grub/grub.cfg'), 'utf8')).toBe(
        debianGrubCfg(
          `root=UUID=${DEBIAN_ROOT_UUID} ro quiet ${tail}`,
          `root=UUID=${DEBIAN_ROOT_UUID} ro single ${tail}`,
          true,
        ),
      );
      expect(report.changes).toBe(planned.reduce((n, p) => n + p.changes.length, 0));
      expect(ctx.log.lines).toContain('p2v-export: block-devices: changed /etc/fstab');
      expect(ctx.log.lines).toContain(
        'p2v-export: serial-console: linked /etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service -> /lib/systemd/system/serial-getty@.service',
      );
      expect(await planFixups(context(root, await withInitrds(root, debianInspection()), options))).toEqual([]);

      const text = annotationFor(report);
      expect(text.split('\n')[0]).toBe('Exported by ganeti-p2v for kvm; guest changes:');
      expect(text).toContain(`block-devices: /etc/fstab: /dev/sda1 -> UUID=${DEBIAN_ROOT_UUID}`);
      expect(text).toContain('hostname: /etc/hostname: host name web1');
      expect(annotationFor([])).toBe('Exported by ganeti-p2v without guest changes.');
    });
  });

  it('renders a dry run as unified diffs and one line per link', async () => {
    await withTmpDir('runner', async (root) => {
      await writeTree(root, {
        '/etc/fstab': '/dev/sda1 / ext4 defaults 0 1\nproc /proc proc defaults 0 0\n',
        '/etc/hostname': 'oldbox\n',
        '/lib/systemd/system/serial-getty@.service': '[Unit]\n',
        '/etc/systemd/network/10-mac.link': '[Match]\nMACAddress=52:54:00:12:34:56\n',
      });
      const insp = debianInspection();
      insp.os!.grubConfigs = [];
      insp.os!.kernels = [];
      const planned = await planFixups(context(root, insp, { hostname: 'new' }));
      expect(renderDryRun(planned)).toBe(`# block-devices
--- /etc/fstab
+++ /etc/fstab
@@ -1,2 +1,2 @@
-/dev/sda1 / ext4 defaults 0 1
+UUID=${DEBIAN_ROOT_UUID} / ext4 defaults 0 1
 proc /proc proc defaults 0 0
# serial-console
symlink /etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service -> /lib/systemd/system/serial-getty@.service
# network-identity
--- /etc/systemd/network/10-mac.link
+++ /dev/null
@@ -1,2 +0,0 @@
-[Match]
-MACAddress=52:54:00:12:34:56
# hostname
--- /etc/hostname
+++ /etc/hostname
@@ -1,1 +1,1 @@
-oldbox
+new
`);
      expect(renderDryRun([])).toBe('no fixups to apply\n');
      expect(
        renderDryRun([
          {
            fixup: 'ip-config',
            summary: [],
            changes: [{ kind: 'write', path: '/etc/x.nmconnection', before: null, after: 'a\n', mode: 0o600 }],
          },
        ]),
      ).toBe('# ip-config\n--- /dev/null\n+++ /etc/x.nmconnection\tnew file, mode 0600\n@@ -0,0 +1,1 @@\n+a\n');
    });
  });

  it('refuses to apply over a file that changed after planning', async () => {
    await withTmpDir('runner', async (root) => {
      await writeTree(root, { '/etc/fstab': '/dev/sda1 / ext4 defaults 0 1\n' });
      const insp = debianInspection();
      insp.os!.grubConfigs = [];
      insp.os!.kernels = [];
      insp.os!.initSystem = 'unknown';
      const ctx = context(root, insp);
      const planned = await planFixups(ctx);
      await writeFile(join(root, 'etc/fstab'), '# edited meanwhile\n');
      const e = await applyFixups(ctx, planned).catch((x: unknown) => x);
      expect(isP2vError(e, 'FIXUP')).toBe(true);
      expect((e as Error).message).toBe('/etc/fstab in the guest changed after the fixups were planned');
      expect(await readFile(join(root, 'etc/fstab'), 'utf8')).toBe('# edited meanwhile\n');
    });
  });

  it('a change the filesystem refuses becomes an IO error naming the file', async () => {
    await withTmpDir('runner', async (root) => {
      await writeTree(root, { '/etc/hostname': 'box\n' });
      const ctx = context(root, debianInspection());
      const e = await applyFixups(ctx, [
        {
          fixup: 'hostname',
          summary: [],
          changes: [{ kind: 'write', path: '/etc/hostname/x', before: null, after: '' }],
        },
      ]).catch((x: unknown) => x);
      expect(isP2vError(e, 'IO')).toBe(true);
      expect((e as Error).message).toMatch(/^hostname: cannot apply a change to \/etc\/hostname\/x: ENOTDIR/);
    });
  });

  it('a guest without an operating system gets no fixups', async () => {
    await withTmpDir('runner', async (root) => {
      const insp = debianInspection();
      delete insp.os;
      expect(await planFixups(context(root, insp, { hostname: 'x', dhcp: true }))).toEqual([]);
    });
  });
});
