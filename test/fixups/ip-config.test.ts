import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ipConfig, ipSettings } from '../../fixups/ip-config.js';
import { isP2vError } from '../../lib/errors.js';
import { withTmpDir } from '../helpers/tmp.js';
import { applyAndReplan, kinds, writes } from './check.js';
import {
  DEBIAN_DEFAULT_GRUB,
  DEBIAN_INTERFACES,
  UBUNTU_NETPLAN,
  UBUNTU_ROOT_UUID,
  context,
  debianGrubCfg,
  debianInspection,
  debianTree,
  rhelInspection,
  rhelTree,
  snapshot,
  sysvInspection,
  sysvTree,
  ubuntuInspection,
  ubuntuTree,
  writeTree,
} from './guests.js';

const STATIC = { ip: '192.0.2.10/24', gateway: '192.0.2.1', dns: ['192.0.2.53', '192.0.2.54'] };
const HEADER = '# Written by ganeti-p2v: the primary interface of the Ganeti instance.';

describe('ip-config', () => {
  it('checks its options', () => {
    expect(ipConfig.appliesTo({ hypervisor: 'kvm' })).toBe(false);
    expect(ipConfig.appliesTo({ hypervisor: 'kvm', dhcp: true })).toBe(true);
    expect(ipSettings({ hypervisor: 'kvm', ip: '2001:db8::5/64', gateway: '2001:db8::1' })).toEqual({
      dhcp: false,
      family: 6,
      address: '2001:db8::5',
      prefix: 64,
      gateway: '2001:db8::1',
      dns: [],
    });
    for (const bad of [
      { ip: '192.0.2.10' },
      { ip: '192.0.2.10/33' },
      { ip: '300.1.1.1/24' },
      { ip: '192.0.2.10/24', dhcp: true },
      { gateway: '192.0.2.1' },
      { dhcp: true, dns: ['resolver'] },
    ]) {
      let err: unknown;
      try {
        ipSettings({ hypervisor: 'kvm', ...bad });
      } catch (e) {
        err = e;
      }
      expect(isP2vError(err, 'USAGE'), JSON.stringify(bad)).toBe(true);
    }
  });

  it('Debian 12 ifupdown: the primary stanza becomes eth0, others and lo stay; net.ifnames=0 on every cmdline', async () => {
    await withTmpDir('ip', async (root) => {
      await writeTree(root, debianTree());
      const plan = await ipConfig.plan(context(root, debianInspection(), STATIC));
      const naming = 'net.ifnames=0 biosdevname=0';
      expect(writes(plan)).toEqual({
        '/etc/network/interfaces': DEBIAN_INTERFACES.replace(
          `allow-hotplug ens3
iface ens3 inet static
	address 10.0.0.5/24
	gateway 10.0.0.1
	# dns-* options are implemented by the resolvconf package, if installed
	dns-nameservers 10.0.0.1
	dns-search example.org
`,
          `allow-hotplug eth0
iface eth0 inet static
	address 192.0.2.10/24
	gateway 192.0.2.1
	dns-nameservers 192.0.2.53 192.0.2.54
`,
        ),
        '/etc/resolv.conf': 'search example.org\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n',
        '/boot/grub/grub.cfg': debianGrubCfg(`root=/dev/sda1 ro quiet ${naming}`, `root=/dev/sda1 ro single ${naming}`),
        '/etc/default/grub': DEBIAN_DEFAULT_GRUB.replace('GRUB_CMDLINE_LINUX=""', `GRUB_CMDLINE_LINUX="${naming}"`),
      });
      expect(writes(plan)['/etc/network/interfaces']).toContain('allow-hotplug ens4\niface ens4 inet dhcp\n');
      await applyAndReplan(root, ipConfig, debianInspection(), STATIC, plan, [
        '/etc/network/interfaces',
        '/etc/resolv.conf',
        '/boot/grub/grub.cfg',
        '/etc/default/grub',
      ]);
    });
  });

  it('sysvinit ifupdown: an eth0 DHCP stanza becomes static in place; no interfaces file gets one appended', async () => {
    await withTmpDir('ip', async (root) => {
      await writeTree(root, sysvTree());
      const opts = { ip: '198.51.100.7/25' };
      const plan = await ipConfig.plan(context(root, sysvInspection(), opts));
      expect(writes(plan)['/etc/network/interfaces']).toBe(
        'auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet static\n\taddress 198.51.100.7/25\n',
      );
      await applyAndReplan(root, ipConfig, sysvInspection(), opts, plan, [
        '/etc/network/interfaces',
        '/boot/grub/grub.cfg',
      ]);
      await rm(join(root, 'etc/network/interfaces'));
      const fresh = await ipConfig.plan(context(root, sysvInspection(), { dhcp: true }));
      expect(fresh.changes[0]).toEqual({
        kind: 'write',
        path: '/etc/network/interfaces',
        before: null,
        after: 'auto eth0\niface eth0 inet dhcp\n',
      });
    });
  });

  it('Ubuntu netplan with --dhcp: our 90-p2v.yaml, the installer file disabled, bridges untouched', async () => {
    await withTmpDir('ip', async (root) => {
      await writeTree(root, ubuntuTree());
      const plan = await ipConfig.plan(context(root, ubuntuInspection(), { dhcp: true }));
      expect(kinds(plan)).toEqual([
        'remove /etc/netplan/00-installer-config.yaml',
        'write /etc/netplan/00-installer-config.yaml.p2v-disabled',
        'write /etc/netplan/90-p2v.yaml',
        'write /boot/grub/grub.cfg',
        'write /etc/default/grub',
      ]);
      expect(writes(plan)['/etc/netplan/90-p2v.yaml']).toBe(
        `${HEADER}\nnetwork:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n`,
      );
      expect(writes(plan)['/etc/netplan/00-installer-config.yaml.p2v-disabled']).toBe(UBUNTU_NETPLAN);
      expect(writes(plan)['/boot/grub/grub.cfg']).toContain(
        `\tlinux\t/boot/vmlinuz-5.15.0-91-generic root=UUID=${UBUNTU_ROOT_UUID} ro console=tty1 quiet splash $vt_handoff net.ifnames=0 biosdevname=0\n`,
      );
      await applyAndReplan(root, ipConfig, ubuntuInspection(), { dhcp: true }, plan, [
        '/etc/netplan/00-installer-config.yaml',
        '/etc/netplan/00-installer-config.yaml.p2v-disabled',
        '/etc/netplan/90-p2v.yaml',
        '/boot/grub/grub.cfg',
        '/etc/default/grub',
      ]);
      expect((await snapshot(root)).get('/etc/netplan/90-p2v.yaml')!.slice(0, 4)).toBe('600 ');
    });
  });

  it('RHEL NetworkManager: a keyfile for eth0 (0600, stable uuid, high priority)', async () => {
    await withTmpDir('ip', async (root) => {
      await writeTree(root, rhelTree());
      const plan = await ipConfig.plan(context(root, rhelInspection(), STATIC));
      const path = '/etc/NetworkManager/system-connections/p2v-eth0.nmconnection';
      expect(plan.changes[0]).toEqual({
        kind: 'write',
        path,
        before: null,
        mode: 0o600,
        after: `${HEADER}
[connection]
id=p2v-eth0
uuid=e3b6a4ba-a6c3-5e08-a7ee-e1c1cc43790b
type=ethernet
interface-name=eth0
autoconnect-priority=100

[ethernet]

[ipv4]
method=manual
address1=192.0.2.10/24,192.0.2.1
dns=192.0.2.53;192.0.2.54;

[ipv6]
method=auto
`,
      });
      expect(kinds(plan).slice(1)).toEqual([
        'write /boot/loader/entries/f1e2d3c4b5a697887766554433221100-5.14.0-362.8.1.el9_3.x86_64.conf',
        'write /boot/grub2/grubenv',
        'write /etc/kernel/cmdline',
        'write /etc/default/grub',
      ]);
      await applyAndReplan(root, ipConfig, rhelInspection(), STATIC, plan, [
        path,
        '/boot/loader/entries/f1e2d3c4b5a697887766554433221100-5.14.0-362.8.1.el9_3.x86_64.conf',
        '/boot/grub2/grubenv',
        '/etc/kernel/cmdline',
        '/etc/default/grub',
      ]);
    });
  });

  it('RHEL ifcfg and systemd-networkd files', async () => {
    await withTmpDir('ip', async (root) => {
      const insp = rhelInspection();
      insp.os!.grubConfigs = [];
      insp.os!.blsEntries = false;
      insp.os!.networkConfig = ['ifcfg'];
      const p1 = await ipConfig.plan(context(root, insp, STATIC));
      expect(p1.changes).toEqual([
        {
          kind: 'write',
          path: '/etc/sysconfig/network-scripts/ifcfg-eth0',
          before: null,
          mode: 0o644,
          after: `${HEADER}\nDEVICE=eth0\nNAME=eth0\nTYPE=Ethernet\nONBOOT=yes\nBOOTPROTO=none\nIPADDR=192.0.2.10\nPREFIX=24\nGATEWAY=192.0.2.1\nDNS1=192.0.2.53\nDNS2=192.0.2.54\n`,
        },
      ]);
      insp.os!.networkConfig = ['systemd-networkd'];
      const p2 = await ipConfig.plan(context(root, insp, { ip: '2001:db8::5/64', gateway: '2001:db8::1' }));
      expect(writes(p2)).toEqual({
        '/etc/systemd/network/05-p2v-eth0.network': `${HEADER}\n[Match]\nName=eth0\n\n[Network]\nAddress=2001:db8::5/64\nGateway=2001:db8::1\n`,
      });
    });
  });

  it('a guest whose network system is unknown is refused', async () => {
    await withTmpDir('ip', async (root) => {
      const insp = debianInspection();
      insp.os!.networkConfig = [];
      const e = await ipConfig.plan(context(root, insp, { dhcp: true })).catch((x: unknown) => x);
      expect(isP2vError(e, 'FIXUP')).toBe(true);
    });
  });
});
