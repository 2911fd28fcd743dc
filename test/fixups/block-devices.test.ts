import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { blockDevices } from '../../fixups/block-devices.js';
import { diskLetters, stableDeviceName } from '../../fixups/device-names.js';
import { isP2vError } from '../../lib/errors.js';
import { withTmpDir } from '../helpers/tmp.js';
import { applyAndReplan, kinds, writes } from './check.js';
import {
  DEBIAN_ROOT_UUID,
  DEBIAN_SWAP_UUID,
  MACHINE_ID,
  RHEL_BOOT_UUID,
  RHEL_DEFAULT_GRUB,
  RHEL_KERNEL,
  RHEL_KERNEL_CMDLINE,
  RHEL_LUKS_UUID,
  RHEL_ROOT_UUID,
  UBUNTU_EFI_UUID,
  UBUNTU_FSTAB,
  context,
  debianGrubCfg,
  debianInspection,
  debianTree,
  grubenv,
  mapped,
  rhelBls,
  rhelInspection,
  rhelTree,
  ubuntuInspection,
  ubuntuTree,
  writeTree,
} from './guests.js';

describe('device names', () => {
  it('prefers UUID, then LABEL, then the hypervisor name, through the device map only', () => {
    const i = rhelInspection();
    const to = (hv: 'kvm' | 'xen-pvm', dev: string) => {
      const r = stableDeviceName(i, hv, dev);
      return 'to' in r ? r.to : null;
    };
    expect(to('kvm', '/dev/sda1')).toBe(`UUID=${RHEL_BOOT_UUID}`);
    expect(to('kvm', '/dev/sda3')).toBe('LABEL=swap0');
    expect(to('kvm', '/dev/sdb2')).toBe('/dev/vdb2');
    expect(to('xen-pvm', '/dev/sdb2')).toBe('/dev/xvdb2');
    expect(to('kvm', '/dev/sdc1')).toBeNull();
    expect(to('kvm', '/dev/sda9')).toBeNull();
    expect([0, 25, 26, 27, 701].map(diskLetters)).toEqual(['a', 'z', 'aa', 'ab', 'zz']);
    // The live names (sda, disk/by-path/…) play no part: only the map does.
    i.os!.deviceMap = mapped(['sda', 1], ['sdb', 0]);
    expect(to('kvm', '/dev/sda1')).toBe('UUID=5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9');
    expect(to('kvm', '/dev/sdb2')).toBe(`UUID=${RHEL_ROOT_UUID}`);
    i.os!.deviceMap = mapped();
    expect(stableDeviceName(i, 'kvm', '/dev/sda1')).toEqual({
      why: '/dev/sda1 names a disk (/dev/sda) that is not matched to an exported disk',
    });
  });
});

describe('block-devices', () => {
  it('Debian 12: fstab, resume and grub.cfg root= move to UUIDs; other lines stay byte-exact', async () => {
    await withTmpDir('bd', async (root) => {
      const tree = debianTree();
      await writeTree(root, tree);
      const plan = await blockDevices.plan(context(root, debianInspection()));
      expect(writes(plan)).toEqual({
        '/etc/fstab': (tree['/etc/fstab'] as string)
          .replace('\n/dev/sda1       /   ', `\nUUID=${DEBIAN_ROOT_UUID}       /   `)
          .replace('\n/dev/sda2       none', `\nUUID=${DEBIAN_SWAP_UUID}       none`),
        '/etc/initramfs-tools/conf.d/resume': `RESUME=UUID=${DEBIAN_SWAP_UUID}\n`,
        '/boot/grub/grub.cfg': debianGrubCfg(
          `root=UUID=${DEBIAN_ROOT_UUID} ro quiet`,
          `root=UUID=${DEBIAN_ROOT_UUID} ro single`,
        ),
      });
      expect(writes(plan)['/etc/fstab']).toContain('# / was on /dev/sda1 during installation\n');
      expect(plan.summary).toEqual([
        `/etc/fstab: /dev/sda1 -> UUID=${DEBIAN_ROOT_UUID}`,
        `/etc/fstab: /dev/sda2 -> UUID=${DEBIAN_SWAP_UUID}`,
        `/etc/initramfs-tools/conf.d/resume: /dev/sda2 -> UUID=${DEBIAN_SWAP_UUID}`,
        `/boot/grub/grub.cfg: /dev/sda1 -> UUID=${DEBIAN_ROOT_UUID}`,
      ]);
      await applyAndReplan(root, blockDevices, debianInspection(), {}, plan, [
        '/etc/fstab',
        '/etc/initramfs-tools/conf.d/resume',
        '/boot/grub/grub.cfg',
      ]);
    });
  });

  it('RHEL 9: LABEL for a swap without UUID, by-path links, crypttab, BLS, grubenv, /etc/default/grub', async () => {
    await withTmpDir('bd', async (root) => {
      const tree = rhelTree();
      await writeTree(root, tree);
      const plan = await blockDevices.plan(context(root, rhelInspection()));
      const fstab = tree['/etc/fstab'] as string;
      expect(writes(plan)).toEqual({
        '/etc/fstab': fstab
          .replace('/dev/sda1               /boot', `UUID=${RHEL_BOOT_UUID}               /boot`)
          .replace('/dev/sda3               none', 'LABEL=swap0               none')
          .replace(
            '/dev/disk/by-path/pci-0000:00:1f.2-ata-2-part1 /srv/data',
            'UUID=5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9 /srv/data',
          )
          .replace('/dev/sdb2               /srv/raw', '/dev/vdb2               /srv/raw'),
        '/etc/crypttab': `luks-data UUID=${RHEL_LUKS_UUID} none discard\nluks-spare UUID=5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9 none\n`,
        [`/boot/loader/entries/${MACHINE_ID}-${RHEL_KERNEL}.conf`]: rhelBls(
          RHEL_KERNEL,
          `root=UUID=${RHEL_ROOT_UUID} ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=LABEL=swap0 rhgb quiet $tuned_params`,
        ),
        '/boot/grub2/grubenv': grubenv(`root=UUID=${RHEL_ROOT_UUID} ro resume=LABEL=swap0 rhgb quiet`),
        '/etc/default/grub': RHEL_DEFAULT_GRUB.replace('resume=/dev/sda3', 'resume=LABEL=swap0'),
        '/etc/kernel/cmdline': RHEL_KERNEL_CMDLINE.replace('resume=/dev/sda3', 'resume=LABEL=swap0'),
      });
      await applyAndReplan(root, blockDevices, rhelInspection(), {}, plan, [
        '/etc/fstab',
        '/etc/crypttab',
        `/boot/loader/entries/${MACHINE_ID}-${RHEL_KERNEL}.conf`,
        '/boot/grub2/grubenv',
        '/etc/kernel/cmdline',
        '/etc/default/grub',
      ]);
    });
  });

  it('Ubuntu: an NVMe partition is mapped, /dev/disk/by-uuid and swap files are left alone', async () => {
    await withTmpDir('bd', async (root) => {
      await writeTree(root, ubuntuTree());
      const plan = await blockDevices.plan(context(root, ubuntuInspection()));
      expect(kinds(plan)).toEqual(['write /etc/fstab']);
      expect(writes(plan)['/etc/fstab']).toBe(
        UBUNTU_FSTAB.replace('/dev/nvme0n1p1 /boot/efi', `UUID=${UBUNTU_EFI_UUID} /boot/efi`),
      );
      await applyAndReplan(root, blockDevices, ubuntuInspection(), {}, plan, ['/etc/fstab']);
    });
  });

  it('keeps bytes that are not UTF-8 (a Latin-1 comment) exact, and warns about disks not exported', async () => {
    await withTmpDir('bd', async (root) => {
      const latin1 = Buffer.concat([
        Buffer.from('# syst'),
        Buffer.from([0xe8]),
        Buffer.from('me racine\n/dev/sda1 / ext4 defaults 0 1\n/dev/sdc1 /mnt/usb vfat noauto 0 0\n'),
      ]);
      await mkdir(join(root, 'etc'), { recursive: true });
      await writeFile(join(root, 'etc/fstab'), latin1);
      const insp = debianInspection();
      insp.os!.grubConfigs = [];
      const ctx = context(root, insp);
      const plan = await blockDevices.plan(ctx);
      expect(ctx.log.lines).toEqual([
        'p2v-export: warning: the guest names /dev/sdc1, which is on none of the exported disks: left as it is',
      ]);
      await applyAndReplan(root, blockDevices, insp, {}, plan, ['/etc/fstab']);
      expect(await readFile(join(root, 'etc/fstab'))).toEqual(
        Buffer.concat([
          latin1.subarray(0, 17),
          Buffer.from(`UUID=${DEBIAN_ROOT_UUID} / ext4 defaults 0 1\n/dev/sdc1 /mnt/usb vfat noauto 0 0\n`),
        ]),
      );
    });
  });

  it('grub-legacy grub.conf (menu.lst links to it) and extlinux APPEND lines', async () => {
    await withTmpDir('bd', async (root) => {
      const grubConf = `default=0
timeout=5
splashimage=(hd0,0)/grub/splash.xpm.gz
hiddenmenu
title CentOS (2.6.32-754.el6.x86_64)
\troot (hd0,0)
\tkernel /vmlinuz-2.6.32-754.el6.x86_64 ro root=/dev/sda1 rd_NO_LUKS LANG=en_US.UTF-8 rhgb quiet
\tinitrd /initramfs-2.6.32-754.el6.x86_64.img
`;
      await writeTree(root, { '/boot/grub/grub.conf': grubConf, '/boot/grub/menu.lst': { symlink: './grub.conf' } });
      const insp = debianInspection();
      insp.os!.bootloader = 'grub-legacy';
      insp.os!.grubConfigs = [];
      const plan = await blockDevices.plan(context(root, insp));
      expect(plan.changes).toEqual([
        {
          kind: 'write',
          path: '/boot/grub/menu.lst',
          before: grubConf,
          after: grubConf.replace('ro root=/dev/sda1 rd_NO_LUKS', `ro root=UUID=${DEBIAN_ROOT_UUID} rd_NO_LUKS`),
        },
      ]);
      await applyAndReplan(root, blockDevices, insp, {}, plan, ['/boot/grub/grub.conf']);

      const ext = 'DEFAULT linux\nLABEL linux\n  KERNEL /boot/vmlinuz\n  APPEND root=/dev/sda1 ro\n';
      await writeTree(root, { '/boot/extlinux/extlinux.conf': ext });
      insp.os!.bootloader = 'extlinux';
      const p2 = await blockDevices.plan(context(root, insp));
      expect(writes(p2)).toEqual({
        '/boot/extlinux/extlinux.conf': ext.replace(
          'APPEND root=/dev/sda1 ro',
          `APPEND root=UUID=${DEBIAN_ROOT_UUID} ro`,
        ),
      });
    });
  });

  it('refuses, before changing anything, when the device map left a name the guest boots with undecided', async () => {
    await withTmpDir('bd', async (root) => {
      await writeTree(root, debianTree());
      const insp = debianInspection();
      insp.os!.deviceMap = {
        disks: [],
        undecided: [
          {
            guestDisk: 'sda',
            candidates: [0, 1],
            references: ['/etc/fstab: /dev/sda1 on /'],
            matters: true,
          },
        ],
        conflicts: [],
      };
      const e = await blockDevices.plan(context(root, insp)).catch((x: unknown) => x);
      expect(isP2vError(e, 'INSPECTION')).toBe(true);
      expect((e as Error).message).toBe(
        'cannot tell which exported disk the guest calls /dev/sda (/etc/fstab: /dev/sda1 on /): disks 0 and 1 both fit',
      );
      expect((e as { hint: string }).hint).toMatch(/^say it with --map-device \/dev\/sda=0 /);
      // An undecided name that does not matter (noauto) is only left alone.
      insp.os!.deviceMap = mapped(['sda', 0]);
      insp.os!.deviceMap.undecided.push({
        guestDisk: 'sdc',
        candidates: [],
        references: ['/etc/fstab: /dev/sdc1 on /mnt/usb'],
        matters: false,
      });
      const plan = await blockDevices.plan(context(root, insp));
      expect(writes(plan)['/etc/fstab']).toContain(`UUID=${DEBIAN_ROOT_UUID}`);
    });
  });
});
