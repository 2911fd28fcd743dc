import { describe, expect, it } from 'vitest';
import { serialConsole } from '../../fixups/serial-console.js';
import { isP2vError } from '../../lib/errors.js';
import { withTmpDir } from '../helpers/tmp.js';
import { applyAndReplan, kinds, writes } from './check.js';
import {
  DEBIAN_DEFAULT_GRUB,
  MACHINE_ID,
  RHEL_DEFAULT_GRUB,
  RHEL_KERNEL,
  RHEL_KERNEL_CMDLINE,
  RHEL_OLD_KERNEL,
  RHEL_ROOT_UUID,
  SYSV_INITTAB,
  SYSV_SECURETTY,
  context,
  debianGrubCfg,
  debianInspection,
  debianTree,
  grubenv,
  rhelBls,
  rhelInspection,
  rhelTree,
  sysvInspection,
  sysvTree,
  UBUNTU_CLOUDIMG_GRUB,
  ubuntuInspection,
  ubuntuTree,
  writeTree,
} from './guests.js';

describe('serial-console', () => {
  it('Debian 12 on kvm: ttyS0 in grub.cfg and /etc/default/grub, serial-getty enabled', async () => {
    await withTmpDir('sc', async (root) => {
      await writeTree(root, debianTree());
      const plan = await serialConsole.plan(context(root, debianInspection()));
      expect(kinds(plan)).toEqual([
        'write /boot/grub/grub.cfg',
        'write /etc/default/grub',
        'symlink /etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service',
      ]);
      expect(writes(plan)).toEqual({
        '/boot/grub/grub.cfg': debianGrubCfg(
          'root=/dev/sda1 ro quiet console=tty0 console=ttyS0,115200n8',
          'root=/dev/sda1 ro single console=tty0 console=ttyS0,115200n8',
          true,
        ),
        '/etc/default/grub':
          DEBIAN_DEFAULT_GRUB.replace(
            'GRUB_CMDLINE_LINUX=""',
            'GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8"',
          ) + 'GRUB_TERMINAL="console serial"\nGRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"\n',
      });
      expect(plan.changes[2]).toEqual({
        kind: 'symlink',
        path: '/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service',
        target: '/lib/systemd/system/serial-getty@.service',
      });
      await applyAndReplan(root, serialConsole, debianInspection(), {}, plan, [
        '/boot/grub/grub.cfg',
        '/etc/default/grub',
        '/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service',
      ]);
    });
  });

  it('RHEL 9 on xen-hvm: BLS options, grubenv kernelopts (same size), securetty', async () => {
    await withTmpDir('sc', async (root) => {
      await writeTree(root, rhelTree());
      const plan = await serialConsole.plan(context(root, rhelInspection(), { hypervisor: 'xen-hvm' }));
      const c = 'console=tty0 console=ttyS0,115200n8';
      const newEnv = grubenv(`root=UUID=${RHEL_ROOT_UUID} ro resume=/dev/sda3 rhgb quiet ${c}`);
      expect(writes(plan)).toEqual({
        [`/boot/loader/entries/${MACHINE_ID}-${RHEL_KERNEL}.conf`]: rhelBls(
          RHEL_KERNEL,
          `root=UUID=${RHEL_ROOT_UUID} ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/sda3 rhgb quiet $tuned_params ${c}`,
        ),
        '/boot/grub2/grubenv': newEnv,
        '/etc/default/grub':
          RHEL_DEFAULT_GRUB.replace('rhgb quiet"', `rhgb quiet ${c}"`) +
          'GRUB_TERMINAL="console serial"\nGRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"\n',
        '/etc/securetty': 'console\ntty1\ntty2\nttyS0\n',
        '/etc/kernel/cmdline': RHEL_KERNEL_CMDLINE.replace('quiet\n', `quiet ${c}\n`),
      });
      expect(newEnv.length).toBe(1024);
      expect(kinds(plan)).toContain('symlink /etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service');
      expect(plan.changes.find((x) => x.kind === 'symlink')).toMatchObject({
        target: '/usr/lib/systemd/system/serial-getty@.service',
      });
      await applyAndReplan(root, serialConsole, rhelInspection(), { hypervisor: 'xen-hvm' }, plan, [
        `/boot/loader/entries/${MACHINE_ID}-${RHEL_KERNEL}.conf`,
        '/boot/grub2/grubenv',
        '/etc/kernel/cmdline',
        '/etc/default/grub',
        '/etc/securetty',
        '/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service',
      ]);
      // The RHEL 8 style entry only refers to $kernelopts: it is untouched.
      expect(kinds(plan)).not.toContain(`write /boot/loader/entries/${MACHINE_ID}-${RHEL_OLD_KERNEL}.conf`);
    });
  });

  it('Ubuntu cloud image: console= and GRUB_TERMINAL in /etc/default/grub.d follow ours', async () => {
    await withTmpDir('sc', async (root) => {
      await writeTree(root, ubuntuTree());
      const plan = await serialConsole.plan(context(root, ubuntuInspection()));
      expect(writes(plan)).toEqual({
        '/boot/grub/grub.cfg': (ubuntuTree()['/boot/grub/grub.cfg'] as string).replace(
          'ro console=tty1  quiet splash $vt_handoff',
          'ro quiet splash $vt_handoff console=tty0 console=ttyS0,115200n8',
        ),
        '/etc/default/grub':
          (ubuntuTree()['/etc/default/grub'] as string).replace(
            'GRUB_CMDLINE_LINUX=""',
            'GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8"',
          ) + 'GRUB_TERMINAL="console serial"\nGRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"\n',
        '/etc/default/grub.d/50-cloudimg-settings.cfg': UBUNTU_CLOUDIMG_GRUB.replace(
          'GRUB_CMDLINE_LINUX_DEFAULT="console=tty1 console=ttyS0"',
          'GRUB_CMDLINE_LINUX_DEFAULT=""',
        ).replace('GRUB_TERMINAL=console', 'GRUB_TERMINAL="console serial"'),
      });
      await applyAndReplan(root, serialConsole, ubuntuInspection(), {}, plan, [
        '/boot/grub/grub.cfg',
        '/etc/default/grub',
        '/etc/default/grub.d/50-cloudimg-settings.cfg',
        '/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service',
      ]);
    });
  });

  it('sysvinit on xen-pvm: hvc0 replaces console=, inittab and securetty get hvc0', async () => {
    await withTmpDir('sc', async (root) => {
      await writeTree(root, sysvTree());
      const plan = await serialConsole.plan(context(root, sysvInspection(), { hypervisor: 'xen-pvm' }));
      expect(writes(plan)).toEqual({
        '/boot/grub/grub.cfg':
          "menuentry 'Debian GNU/Linux, with Linux 3.2.0-4-amd64' {\n\tlinux\t/boot/vmlinuz-3.2.0-4-amd64 root=/dev/hda1 ro quiet console=hvc0\n\tinitrd\t/boot/initrd.img-3.2.0-4-amd64\n}\n",
        '/etc/inittab': SYSV_INITTAB + 'T0:23:respawn:/sbin/getty -L hvc0 115200 vt100\n',
        '/etc/securetty': SYSV_SECURETTY + 'hvc0\n',
      });
      await applyAndReplan(root, serialConsole, sysvInspection(), { hypervisor: 'xen-pvm' }, plan, [
        '/boot/grub/grub.cfg',
        '/etc/inittab',
        '/etc/securetty',
      ]);
    });
  });

  it('an inittab id already in use is not reused', async () => {
    await withTmpDir('sc', async (root) => {
      await writeTree(root, { '/etc/inittab': 'T0:23:respawn:/sbin/getty -L ttyS1 9600 vt100\n' });
      const insp = sysvInspection();
      insp.os!.grubConfigs = [];
      const plan = await serialConsole.plan(context(root, insp));
      expect(writes(plan)['/etc/inittab']).toBe(
        'T0:23:respawn:/sbin/getty -L ttyS1 9600 vt100\nT1:23:respawn:/sbin/getty -L ttyS0 115200 vt100\n',
      );
    });
  });

  it('upstart gets a job for the console', async () => {
    await withTmpDir('sc', async (root) => {
      await writeTree(root, { '/etc/init/tty1.conf': 'exec /sbin/getty -8 38400 tty1\n' });
      const insp = sysvInspection();
      insp.os!.initSystem = 'upstart';
      insp.os!.grubConfigs = [];
      const plan = await serialConsole.plan(context(root, insp));
      expect(kinds(plan)).toEqual(['write /etc/init/ttyS0.conf']);
      expect(writes(plan)['/etc/init/ttyS0.conf']).toMatch(/^exec \/sbin\/getty -L 115200 ttyS0 vt102$/m);
      await applyAndReplan(root, serialConsole, insp, {}, plan, ['/etc/init/ttyS0.conf']);
    });
  });

  it('a systemd guest without serial-getty@.service is refused with a hint', async () => {
    await withTmpDir('sc', async (root) => {
      await writeTree(root, { '/etc/motd': 'hi\n' });
      const insp = debianInspection();
      insp.os!.grubConfigs = [];
      const e = await serialConsole.plan(context(root, insp)).catch((x: unknown) => x);
      expect(isP2vError(e, 'FIXUP')).toBe(true);
      expect((e as Error).message).toBe('systemd guest has no serial-getty@.service to start a login on ttyS0');
    });
  });
});
