/**
 * Guest trees for the fixup tests: the files of a Debian 12, an Ubuntu 22.04,
 * a RHEL 9 and a sysvinit (Debian 7) installation that the fixups read or
 * change, written under a temp dir, with the Inspection exporter/inspect
 * would make of each. Contents follow what those installers write.
 */
import { chmod, mkdir, readFile, readdir, lstat, readlink, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Inspection, InspectedOs } from '../../guest/types.js';
import type { GuestDeviceMap } from '../../guest/device-map.js';
import { memoryLogger } from '../../lib/log.js';
import type { FixupContext, FixupOptions } from '../../fixups/types.js';
import { GuestFiles } from '../../fixups/guest-files.js';
import { GuestTree } from '../../guest/files.js';
import { initrdContent } from '../../guest/inspect/detect.js';

export type Tree = Record<string, string | { text: string; mode: number } | { symlink: string }>;

export async function writeTree(root: string, tree: Tree): Promise<void> {
  for (const [path, v] of Object.entries(tree)) {
    const host = join(root, path);
    await mkdir(dirname(host), { recursive: true });
    if (typeof v === 'string') await writeFile(host, v);
    else if ('symlink' in v) await symlink(v.symlink, host);
    else {
      await writeFile(host, v.text);
      await chmod(host, v.mode);
    }
  }
}

/** Every file, symlink and its content under root, for byte-exact comparisons. */
export async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  async function walk(dir: string, rel: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const host = join(dir, name);
      const path = `${rel}/${name}`;
      const st = await lstat(host);
      if (st.isSymbolicLink()) out.set(path, `-> ${await readlink(host)}`);
      else if (st.isDirectory()) await walk(host, path);
      else out.set(path, `${(st.mode & 0o7777).toString(8)} ${(await readFile(host)).toString('latin1')}`);
    }
  }
  await walk(root, '');
  return out;
}

/** Paths whose entry differs between two snapshots. */
export function changedPaths(a: Map<string, string>, b: Map<string, string>): string[] {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => a.get(k) !== b.get(k)).sort();
}

export function context(
  root: string,
  inspection: Inspection,
  options: Partial<FixupOptions> = {},
): FixupContext & { log: ReturnType<typeof memoryLogger> } {
  return {
    root,
    inspection,
    options: { hypervisor: 'kvm', ...options },
    log: memoryLogger('p2v-export'),
    files: new GuestFiles(root),
  };
}

/** The inspection with what inspection reads of each kernel's initramfs image in the tree at root. */
export async function withInitrds(root: string, inspection: Inspection): Promise<Inspection> {
  const tree = new GuestTree(root);
  for (const k of inspection.os?.kernels ?? []) {
    const content = k.initrd ? await initrdContent(tree, k.initrd) : undefined;
    if (content) k.initrdContent = content;
    else delete k.initrdContent;
  }
  return inspection;
}

/** A device map as inspection decides it, for fixtures: guest disk key → exported disk index. */
export function mapped(...pairs: [string, number][]): GuestDeviceMap {
  return {
    disks: pairs.map(([guestDisk, index]) => ({ guestDisk, index, evidence: 'fixture' })),
    undecided: [],
    conflicts: [],
  };
}

const machine = { cpus: 2, memoryMiB: 2048, nics: [{ name: 'ens3', mac: '52:54:00:12:34:56' }] };

function os(over: Partial<InspectedOs>): InspectedOs {
  return {
    distro: 'debian',
    distroLike: [],
    version: '12',
    prettyName: 'Debian GNU/Linux 12 (bookworm)',
    hostname: 'oldbox',
    arch: 'x86_64',
    kernels: [],
    initramfsTool: 'initramfs-tools',
    bootloader: 'grub2',
    grubConfigs: ['/boot/grub/grub.cfg'],
    blsEntries: false,
    initSystem: 'systemd',
    networkConfig: ['ifupdown'],
    root: { disk: 0, partition: 1 },
    deviceMap: mapped(['sda', 0]),
    ...over,
  };
}

// ---------------------------------------------------------------- Debian 12

export const DEBIAN_KERNEL = '6.1.0-18-amd64';
export const DEBIAN_ROOT_UUID = '3b1f8a36-7a55-4c55-9d0e-2f4f1c6f0b21';
export const DEBIAN_SWAP_UUID = 'a9d0c1e2-5f3b-4c8e-8f1d-6b7a2c3d4e5f';

export const DEBIAN_FSTAB = `# /etc/fstab: static file system information.
#
# Use 'blkid' to print the universally unique identifier for a
# device; this may be used with UUID= as a more robust way to name devices
# that works even if disks are added and removed. See fstab(5).
#
# systemd generates mount units based on this file, see systemd.mount(5).
# Please run 'systemctl daemon-reload' after you make changes here.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
# / was on /dev/sda1 during installation
/dev/sda1       /               ext4    errors=remount-ro 0       1
# swap was on /dev/sda2 during installation
/dev/sda2       none            swap    sw              0       0
/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0
tmpfs	/tmp	tmpfs	defaults,size=512m	0	0
`;

export const DEBIAN_DEFAULT_GRUB = `# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.
# For full documentation of the options in this file, see:
#   info -f grub -n 'Simple configuration'

GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=\`lsb_release -i -s 2> /dev/null || echo Debian\`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""

# Uncomment to disable graphical terminal (grub-pc only)
#GRUB_TERMINAL=console
`;

/** Debian's generated grub.cfg; `serial` adds what serial-console puts at the end of 00_header. */
export function debianGrubCfg(args: string, recoveryArgs: string, serial = false): string {
  const terminal = serial
    ? 'serial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\n'
    : '';
  return `#
# DO NOT EDIT THIS FILE
#
# It is automatically generated by grub-mkconfig using templates
# from /etc/grub.d and settings from /etc/default/grub
#

### BEGIN /etc/grub.d/00_header ###
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
set default="0"
terminal_output gfxterm
${terminal}### END /etc/grub.d/00_header ###

### BEGIN /etc/grub.d/10_linux ###
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-${DEBIAN_ROOT_UUID}' {
	load_video
	insmod gzio
	insmod part_msdos
	insmod ext2
	set root='hd0,msdos1'
	search --no-floppy --fs-uuid --set=root ${DEBIAN_ROOT_UUID}
	echo	'Loading Linux ${DEBIAN_KERNEL} ...'
	linux	/boot/vmlinuz-${DEBIAN_KERNEL} ${args}
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-${DEBIAN_KERNEL}
}
menuentry 'Debian GNU/Linux, with Linux ${DEBIAN_KERNEL} (recovery mode)' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-${DEBIAN_KERNEL}-recovery-${DEBIAN_ROOT_UUID}' {
	load_video
	insmod gzio
	insmod part_msdos
	insmod ext2
	set root='hd0,msdos1'
	search --no-floppy --fs-uuid --set=root ${DEBIAN_ROOT_UUID}
	echo	'Loading Linux ${DEBIAN_KERNEL} ...'
	linux	/boot/vmlinuz-${DEBIAN_KERNEL} ${recoveryArgs}
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-${DEBIAN_KERNEL}
}
### END /etc/grub.d/10_linux ###
`;
}

export const DEBIAN_INTERFACES = `# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
allow-hotplug ens3
iface ens3 inet static
	address 10.0.0.5/24
	gateway 10.0.0.1
	# dns-* options are implemented by the resolvconf package, if installed
	dns-nameservers 10.0.0.1
	dns-search example.org

# A second card for backups
allow-hotplug ens4
iface ens4 inet dhcp
`;

export const DEBIAN_PERSISTENT_NET = `# This file was automatically generated by the /lib/udev/write_net_rules
# program, run by the persistent-net-generator.rules rules file.
#
# You can modify it, as long as you keep each rule on a single
# line, and change only the value of the NAME= key.

# PCI device 0x8086:0x100e (e1000)
SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="52:54:00:12:34:56", ATTR{dev_id}=="0x0", ATTR{type}=="1", KERNEL=="eth*", NAME="eth0"

# PCI device 0x8086:0x10d3 (e1000e)
SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="52:54:00:ab:cd:ef", ATTR{dev_id}=="0x0", ATTR{type}=="1", KERNEL=="eth*", NAME="eth1"
`;

export const DEBIAN_HOSTS = `127.0.0.1	localhost
127.0.1.1	oldbox.example.org	oldbox

# The following lines are desirable for IPv6 capable hosts
::1     localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
`;

export const INITRAMFS_TOOLS_MODULES_DEFAULT = `# List of modules that you want to include in your initramfs.
# They will be loaded at boot time in the order below.
#
# Syntax:  module_name [args ...]
#
# You must run update-initramfs(8) to effect this change.
#
# Examples:
#
# raid1
# sd_mod
`;

export const SERIAL_GETTY_UNIT = `[Unit]
Description=Serial Getty on %I
BindsTo=dev-%i.device
After=dev-%i.device systemd-user-sessions.service plymouth-quit-wait.service getty-pre.target

[Service]
ExecStart=-/sbin/agetty -o '-p -- \\\\u' --keep-baud 115200,57600,38400,9600 - $TERM
Type=idle
Restart=always
`;

/** modules.dep of a Debian kernel: virtio and xen drivers are modules. */
export function modulesDep(version: string): string {
  const mods = [
    'kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/scsi/virtio_scsi.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/drivers/net/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/block/xen-blkfront.ko:',
    'kernel/drivers/net/xen-netfront.ko:',
    'kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko',
  ];
  void version;
  return mods.join('\n') + '\n';
}

export function debianTree(): Tree {
  return {
    '/etc/os-release':
      'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n',
    '/etc/fstab': DEBIAN_FSTAB,
    '/etc/default/grub': DEBIAN_DEFAULT_GRUB,
    '/boot/grub/grub.cfg': debianGrubCfg('root=/dev/sda1 ro  quiet', 'root=/dev/sda1 ro single'),
    '/boot/vmlinuz-6.1.0-18-amd64': 'kernel\n',
    '/etc/initramfs-tools/modules': INITRAMFS_TOOLS_MODULES_DEFAULT,
    '/etc/initramfs-tools/conf.d/resume': 'RESUME=/dev/sda2\n',
    '/usr/sbin/update-initramfs': { text: '#!/bin/sh\nexit 0\n', mode: 0o755 },
    [`/lib/modules/${DEBIAN_KERNEL}/modules.dep`]: modulesDep(DEBIAN_KERNEL),
    [`/lib/modules/${DEBIAN_KERNEL}/modules.builtin`]: 'kernel/drivers/block/loop.ko\nkernel/fs/ext4/ext4.ko\n',
    '/lib/systemd/system/serial-getty@.service': SERIAL_GETTY_UNIT,
    '/etc/systemd/system/getty.target.wants/getty@tty1.service': { symlink: '/lib/systemd/system/getty@.service' },
    '/etc/udev/rules.d/70-persistent-net.rules': DEBIAN_PERSISTENT_NET,
    '/etc/network/interfaces': DEBIAN_INTERFACES,
    '/etc/hostname': 'oldbox\n',
    '/etc/hosts': DEBIAN_HOSTS,
    '/etc/mailname': 'oldbox.example.org\n',
    '/etc/resolv.conf': 'search example.org\nnameserver 10.0.0.1\n',
    '/etc/motd': 'Welcome to oldbox\n',
  };
}

export function debianInspection(): Inspection {
  return {
    disks: [
      {
        index: 0,
        // The live image's USB stick is sda: the guest's sda is the live system's sdb.
        source: '/dev/sdb',
        sourceName: 'sdb',
        size: 8 << 30,
        partitionTable: 'dos',
        diskId: '0x5d3c2b1a',
        partitions: [
          {
            number: 1,
            start: 1 << 20,
            size: 7 << 30,
            type: '83',
            bootable: true,
            fsType: 'ext4',
            fsUuid: DEBIAN_ROOT_UUID,
            mountpoint: '/',
          },
          {
            number: 2,
            start: (7 << 30) + (1 << 20),
            size: 1 << 29,
            type: '82',
            fsType: 'swap',
            fsUuid: DEBIAN_SWAP_UUID,
            mountpoint: 'swap',
          },
        ],
      },
    ],
    os: os({
      hostname: 'oldbox',
      kernels: [
        {
          version: DEBIAN_KERNEL,
          vmlinuz: `/boot/vmlinuz-${DEBIAN_KERNEL}`,
          initrd: `/boot/initrd.img-${DEBIAN_KERNEL}`,
          hasModules: true,
        },
      ],
    }),
    machine,
    warnings: [],
  };
}

// ---------------------------------------------------------------- Ubuntu 22.04

export const UBUNTU_ROOT_UUID = '6f1d5e0a-90b3-4cde-a1b2-33c4d5e6f708';
export const UBUNTU_EFI_UUID = '1A2B-3C4D';

export const UBUNTU_FSTAB = `# /etc/fstab: static file system information.
#
# Use 'blkid' to print the universally unique identifier for a
# device; this may be used with UUID= as a more robust way to name devices
# that works even if disks are added and removed. See fstab(5).
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
/dev/disk/by-uuid/${UBUNTU_ROOT_UUID} / ext4 defaults 0 1
/dev/nvme0n1p1 /boot/efi vfat umask=0077 0 1
/swap.img	none	swap	sw	0	0
`;

export const UBUNTU_NETPLAN = `# This is the network config written by 'subiquity'
network:
  ethernets:
    enp1s0:
      dhcp4: true
  version: 2
`;

export const UBUNTU_CLOUDIMG_GRUB = `# Cloud Image specific Grub settings for Generic Cloud Images
# CLOUD_IMG: This file was created/modified by the Cloud Image build process

# Set the recordfail timeout
GRUB_RECORDFAIL_TIMEOUT=0

# Do not wait on grub prompt
GRUB_TIMEOUT=0

# Set the default commandline
GRUB_CMDLINE_LINUX_DEFAULT="console=tty1 console=ttyS0"

# Set the grub console type
GRUB_TERMINAL=console
`;

export function ubuntuTree(): Tree {
  return {
    '/etc/os-release': 'NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\n',
    '/etc/fstab': UBUNTU_FSTAB,
    '/etc/default/grub': DEBIAN_DEFAULT_GRUB.replace('echo Debian', 'echo Ubuntu').replace('"quiet"', '"quiet splash"'),
    '/boot/grub/grub.cfg': `set default="0"
menuentry 'Ubuntu' --class ubuntu --class gnu-linux --class gnu --class os {
	search --no-floppy --fs-uuid --set=root ${UBUNTU_ROOT_UUID}
	linux	/boot/vmlinuz-5.15.0-91-generic root=UUID=${UBUNTU_ROOT_UUID} ro console=tty1  quiet splash $vt_handoff
	initrd	/boot/initrd.img-5.15.0-91-generic
}
`,
    '/etc/default/grub.d/50-cloudimg-settings.cfg': UBUNTU_CLOUDIMG_GRUB,
    '/etc/netplan/00-installer-config.yaml': { text: UBUNTU_NETPLAN, mode: 0o600 },
    '/etc/netplan/99-bridges.yaml': 'network:\n  version: 2\n  bridges:\n    br0:\n      interfaces: []\n',
    '/lib/systemd/system/serial-getty@.service': SERIAL_GETTY_UNIT,
    '/etc/hostname': 'ubuntu-srv\n',
    '/etc/hosts': '127.0.0.1 localhost\n127.0.1.1 ubuntu-srv\n',
  };
}

export function ubuntuInspection(): Inspection {
  return {
    disks: [
      {
        index: 0,
        source: '/dev/nvme0n1',
        sourceName: 'nvme0n1',
        size: 20 << 30,
        partitionTable: 'gpt',
        partitions: [
          {
            number: 1,
            start: 1 << 20,
            size: 1 << 30,
            type: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
            fsType: 'vfat',
            fsUuid: UBUNTU_EFI_UUID,
            mountpoint: '/boot/efi',
          },
          {
            number: 2,
            start: (1 << 30) + (1 << 20),
            size: 19 << 30,
            type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
            fsType: 'ext4',
            fsUuid: UBUNTU_ROOT_UUID,
            mountpoint: '/',
          },
        ],
      },
    ],
    os: os({
      distro: 'ubuntu',
      distroLike: ['debian'],
      version: '22.04',
      prettyName: 'Ubuntu 22.04.3 LTS',
      hostname: 'ubuntu-srv',
      networkConfig: ['netplan'],
      root: { disk: 0, partition: 2 },
      deviceMap: mapped(['nvme0n1', 0]),
    }),
    machine,
    warnings: [],
  };
}

// ---------------------------------------------------------------- RHEL 9 (+ a RHEL 8 style entry)

export const RHEL_KERNEL = '5.14.0-362.8.1.el9_3.x86_64';
export const RHEL_OLD_KERNEL = '4.18.0-513.5.1.el8_9.x86_64';
export const RHEL_ROOT_UUID = 'd2f0c9b1-7e6a-4b3c-9a8d-1e2f3a4b5c6d';
export const RHEL_BOOT_UUID = '0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b';
export const RHEL_LUKS_UUID = '77aa88bb-99cc-4ddd-8eee-ff0011223344';
export const MACHINE_ID = 'f1e2d3c4b5a697887766554433221100';

export const RHEL_FSTAB = `
#
# /etc/fstab
# Created by anaconda on Tue Nov 14 09:12:33 2023
#
# Accessible filesystems, by reference, are maintained under '/dev/disk/'.
# See man pages fstab(5), findfs(8), mount(8) and/or blkid(8) for more info.
#
# After editing this file, run 'systemctl daemon-reload' to update systemd
# units generated from this file.
#
UUID=${RHEL_ROOT_UUID} /                       xfs     defaults        0 0
/dev/sda1               /boot                   xfs     defaults        0 0
/dev/sda3               none                    swap    defaults        0 0
/dev/disk/by-path/pci-0000:00:1f.2-ata-2-part1 /srv/data ext4 defaults 0 2
/dev/sdb2               /srv/raw                ext4    noauto          0 0
/dev/mapper/luks-data   /srv/secret             xfs     defaults        0 0
nfs1:/export/home       /home                   nfs     defaults,_netdev 0 0
`;

export const RHEL_DEFAULT_GRUB = `GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR="$(sed 's, release .*$,,g' /etc/system-release)"
GRUB_DEFAULT=saved
GRUB_DISABLE_SUBMENU=true
GRUB_TERMINAL_OUTPUT="console"
GRUB_CMDLINE_LINUX="crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/sda3 rhgb quiet"
GRUB_DISABLE_RECOVERY="true"
GRUB_ENABLE_BLSCFG=true
`;

export function rhelBls(version: string, options: string): string {
  return `title Red Hat Enterprise Linux (${version}) 9.3 (Plow)
version ${version}
linux /vmlinuz-${version}
initrd /initramfs-${version}.img $tuned_initrd
options ${options}
grub_users $grub_users
grub_arg --unrestricted
grub_class rhel
`;
}

export function grubenv(kernelopts: string): string {
  const body = `# GRUB Environment Block\nsaved_entry=${MACHINE_ID}-${RHEL_KERNEL}\nkernelopts=${kernelopts}\nboot_success=0\n`;
  return body + '#'.repeat(1024 - body.length);
}

export const RHEL_KERNEL_CMDLINE = `root=UUID=${RHEL_ROOT_UUID} ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/sda3 rhgb quiet\n`;

export const RHEL_KEYFILE = `[connection]
id=ens192
uuid=3c5e3e4a-6a55-3b1e-9f3f-2b0a7c6d1e11
type=ethernet
autoconnect-priority=-999
interface-name=ens192

[ethernet]
mac-address=00:50:56:9A:12:34

[ipv4]
address1=10.1.0.7/24,10.1.0.1
dns=10.1.0.2;
method=manual

[ipv6]
addr-gen-mode=eui64
method=auto

[proxy]
`;

export const RHEL_IFCFG = `TYPE=Ethernet
PROXY_METHOD=none
BROWSER_ONLY=no
BOOTPROTO=dhcp
DEFROUTE=yes
NAME=ens224
UUID=9b2f0a7c-2d1e-4b3a-8c5d-6e7f8a9b0c1d
DEVICE=ens224
HWADDR=00:50:56:9a:56:78
ONBOOT=yes
`;

export const RHEL_LINK = `[Match]
MACAddress=00:50:56:9a:12:34

[Link]
Name=lan0
`;

export function rhelTree(): Tree {
  return {
    '/etc/os-release': 'NAME="Red Hat Enterprise Linux"\nVERSION_ID="9.3"\nID="rhel"\nID_LIKE="fedora"\n',
    '/etc/fstab': RHEL_FSTAB,
    '/etc/crypttab': `luks-data UUID=${RHEL_LUKS_UUID} none discard\nluks-spare /dev/sdb1 none\n`,
    '/etc/default/grub': RHEL_DEFAULT_GRUB,
    '/boot/grub2/grub.cfg':
      '### BEGIN /etc/grub.d/10_linux ###\ninsmod blscfg\nblscfg\n### END /etc/grub.d/10_linux ###\n',
    '/boot/grub2/grubenv': grubenv(`root=UUID=${RHEL_ROOT_UUID} ro resume=/dev/sda3 rhgb quiet`),
    [`/boot/loader/entries/${MACHINE_ID}-${RHEL_KERNEL}.conf`]: rhelBls(
      RHEL_KERNEL,
      `root=UUID=${RHEL_ROOT_UUID} ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/sda3 rhgb quiet $tuned_params`,
    ),
    [`/boot/loader/entries/${MACHINE_ID}-${RHEL_OLD_KERNEL}.conf`]: rhelBls(
      RHEL_OLD_KERNEL,
      '$kernelopts $tuned_params',
    ),
    '/etc/kernel/cmdline': RHEL_KERNEL_CMDLINE,
    '/usr/bin/dracut': { text: '#!/bin/bash\nexit 0\n', mode: 0o755 },
    '/usr/lib/systemd/system/serial-getty@.service': SERIAL_GETTY_UNIT,
    '/etc/NetworkManager/system-connections/ens192.nmconnection': { text: RHEL_KEYFILE, mode: 0o600 },
    '/etc/sysconfig/network-scripts/ifcfg-ens224': RHEL_IFCFG,
    '/etc/sysconfig/network-scripts/ifcfg-lo':
      'DEVICE=lo\nIPADDR=127.0.0.1\nNETMASK=255.0.0.0\nONBOOT=yes\nNAME=loopback\n',
    '/etc/sysconfig/network': '# Created by anaconda\n',
    '/etc/systemd/network/70-lan0.link': RHEL_LINK,
    '/etc/systemd/network/80-other.link': '[Match]\nDriver=e1000e\n\n[Link]\nMTUBytes=9000\n',
    '/etc/hostname': 'rhelbox.example.com\n',
    '/etc/hosts':
      '127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4\n::1         localhost localhost.localdomain localhost6 localhost6.localdomain6\n',
    '/etc/securetty': 'console\ntty1\ntty2\n',
    '/etc/selinux/config':
      '# This file controls the state of SELinux on the system.\nSELINUX=enforcing\nSELINUXTYPE=targeted\n',
  };
}

export function rhelInspection(): Inspection {
  return {
    disks: [
      {
        index: 0,
        source: '/dev/sda',
        sourceName: 'sda',
        size: 40 << 30,
        partitionTable: 'gpt',
        partitions: [
          {
            number: 1,
            start: 1 << 20,
            size: 1 << 30,
            type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
            fsType: 'xfs',
            fsUuid: RHEL_BOOT_UUID,
            mountpoint: '/boot',
          },
          {
            number: 2,
            start: 2 << 30,
            size: 30 << 30,
            type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
            fsType: 'xfs',
            fsUuid: RHEL_ROOT_UUID,
            mountpoint: '/',
          },
          {
            number: 3,
            start: 33 << 30,
            size: 4 << 30,
            type: '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F',
            fsType: 'swap',
            fsLabel: 'swap0',
            mountpoint: 'swap',
          },
        ],
      },
      {
        index: 1,
        source: '/dev/disk/by-path/pci-0000:00:1f.2-ata-2',
        sourceName: 'disk/by-path/pci-0000:00:1f.2-ata-2',
        hardwareLinks: ['disk/by-path/pci-0000:00:1f.2-ata-2'],
        size: 10 << 30,
        partitionTable: 'dos',
        partitions: [
          {
            number: 1,
            start: 1 << 20,
            size: 4 << 30,
            type: '83',
            fsType: 'ext4',
            fsUuid: '5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9',
            mountpoint: '/srv/data',
          },
          { number: 2, start: 5 << 30, size: 4 << 30, type: '83' },
        ],
      },
    ],
    os: os({
      distro: 'rhel',
      distroLike: ['fedora'],
      version: '9.3',
      prettyName: 'Red Hat Enterprise Linux 9.3 (Plow)',
      hostname: 'rhelbox.example.com',
      kernels: [
        {
          version: RHEL_KERNEL,
          vmlinuz: `/boot/vmlinuz-${RHEL_KERNEL}`,
          initrd: `/boot/initramfs-${RHEL_KERNEL}.img`,
          hasModules: true,
        },
      ],
      initramfsTool: 'dracut',
      grubConfigs: ['/boot/grub2/grub.cfg'],
      blsEntries: true,
      networkConfig: ['networkmanager', 'ifcfg'],
      root: { disk: 0, partition: 2 },
      deviceMap: mapped(['disk/by-path/pci-0000:00:1f.2-ata-2', 1], ['sda', 0], ['sdb', 1]),
    }),
    machine: { ...machine, nics: [{ name: 'ens192', mac: '00:50:56:9a:12:34' }] },
    warnings: [],
  };
}

// ---------------------------------------------------------------- sysvinit (Debian 7)

export const SYSV_INITTAB = `# /etc/inittab: init(8) configuration.
# $Id: inittab,v 1.91 2002/01/25 13:35:21 miquels Exp $

# The default runlevel.
id:2:initdefault:

# Boot-time system configuration/initialization script.
# This is run first except when booting in emergency (-b) mode.
si::sysinit:/etc/init.d/rcS

l0:0:wait:/etc/init.d/rc 0
l1:1:wait:/etc/init.d/rc 1
l2:2:wait:/etc/init.d/rc 2

# What to do when CTRL-ALT-DEL is pressed.
ca:12345:ctrlaltdel:/sbin/shutdown -t1 -a -r now

1:2345:respawn:/sbin/getty 38400 tty1
2:23:respawn:/sbin/getty 38400 tty2

# Example how to put a getty on a serial line (for a terminal)
#
#T0:23:respawn:/sbin/getty -L ttyS0 9600 vt100
#T1:23:respawn:/sbin/getty -L ttyS1 9600 vt100
`;

export const SYSV_SECURETTY = `# /etc/securetty: list of terminals on which root is allowed to login.
# See securetty(5) and login(1).
console

# Standard consoles
tty1
tty2
`;

export function sysvTree(): Tree {
  return {
    '/etc/os-release': 'PRETTY_NAME="Debian GNU/Linux 7 (wheezy)"\nID=debian\nVERSION_ID="7"\n',
    '/etc/fstab': 'proc /proc proc defaults 0 0\n/dev/hda1 / ext3 errors=remount-ro 0 1\n',
    '/etc/inittab': SYSV_INITTAB,
    '/etc/securetty': SYSV_SECURETTY,
    '/boot/grub/grub.cfg':
      "menuentry 'Debian GNU/Linux, with Linux 3.2.0-4-amd64' {\n\tlinux\t/boot/vmlinuz-3.2.0-4-amd64 root=/dev/hda1 ro console=tty0 quiet\n\tinitrd\t/boot/initrd.img-3.2.0-4-amd64\n}\n",
    '/lib/udev/rules.d/75-persistent-net-generator.rules':
      '# generator rules (abridged)\nACTION=="add", SUBSYSTEM=="net", IMPORT{program}="write_net_rules"\n',
    '/etc/udev/rules.d/70-persistent-net.rules': DEBIAN_PERSISTENT_NET,
    '/etc/network/interfaces': 'auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n',
    '/etc/hostname': 'wheezy\n',
    '/etc/hosts': '127.0.0.1\tlocalhost\n127.0.1.1\twheezy\n',
  };
}

export function sysvInspection(): Inspection {
  const i = debianInspection();
  i.disks[0]!.sourceName = 'hda';
  i.disks[0]!.source = '/dev/hda';
  i.os = os({
    hostname: 'wheezy',
    version: '7',
    prettyName: 'Debian GNU/Linux 7 (wheezy)',
    initSystem: 'sysvinit',
    kernels: [],
    deviceMap: mapped(['hda', 0]),
  });
  return i;
}
