/**
 * What the sample disk (sample-disk.ts) holds: the Debian-12-like root tree
 * with its fstab, network configuration, udev rule, GRUB configuration and
 * live files of known content, and a tiny but real initramfs-tools initrd.
 * Kept apart from the disk assembly (partitions, filesystems, loop devices,
 * dirt), which only decides where this tree goes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { requireProgram, run } from './run.js';

const MiB = 1024 * 1024;

/** Deterministic bytes from a seed, so a live file's content can be checked anywhere. */
export function seededBytes(seed: string, length: number): Buffer {
  const out = Buffer.alloc(length);
  let counter = 0;
  for (let off = 0; off < length; off += 32) {
    createHash('sha256').update(`${seed}:${counter++}`).digest().copy(out, off);
  }
  return out;
}

export async function put(root: string, guestPath: string, content: string | Buffer, mode?: number): Promise<void> {
  const p = join(root, guestPath);
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, content);
  if (mode !== undefined) await chmod(p, mode);
}

/** A tiny but real initramfs-tools style initrd: a gzip-compressed newc cpio. */
export async function buildInitrd(work: string, kver: string): Promise<Buffer> {
  await requireProgram('cpio');
  const tree = join(work, 'initrd');
  const mods = `lib/modules/${kver}/kernel`;
  const files: Record<string, string> = {
    init: '#!/bin/sh\n# sample initramfs-tools init\nexec /sbin/init\n',
    'conf/initramfs.conf': 'MODULES=dep\nBUSYBOX=auto\nCOMPRESS=gzip\n',
    'conf/conf.d/resume': 'RESUME=none\n',
    [`${mods}/drivers/ata/ahci.ko`]: 'dummy module ahci\n',
    [`${mods}/drivers/ata/ata_piix.ko`]: 'dummy module ata_piix\n',
    [`${mods}/drivers/scsi/sd_mod.ko`]: 'dummy module sd_mod\n',
    [`${mods}/drivers/block/virtio_blk.ko`]: 'dummy module virtio_blk\n',
    [`${mods}/drivers/scsi/virtio_scsi.ko`]: 'dummy module virtio_scsi\n',
    [`${mods}/drivers/virtio/virtio_pci.ko`]: 'dummy module virtio_pci\n',
    [`${mods}/drivers/net/virtio_net.ko`]: 'dummy module virtio_net\n',
    [`${mods}/fs/ext4/ext4.ko`]: 'dummy module ext4\n',
    [`lib/modules/${kver}/modules.dep`]:
      'kernel/drivers/ata/ahci.ko:\nkernel/drivers/ata/ata_piix.ko:\nkernel/drivers/scsi/sd_mod.ko:\n' +
      'kernel/drivers/block/virtio_blk.ko:\nkernel/drivers/scsi/virtio_scsi.ko:\nkernel/drivers/virtio/virtio_pci.ko:\nkernel/drivers/net/virtio_net.ko:\nkernel/fs/ext4/ext4.ko:\n',
  };
  for (const [p, c] of Object.entries(files)) await put(tree, p, c, p === 'init' ? 0o755 : 0o644);
  // cpio wants the list of names on stdin, directories before their contents.
  const names = new Set<string>();
  for (const p of Object.keys(files)) {
    const parts = p.split('/');
    for (let i = 1; i <= parts.length; i++) names.add(parts.slice(0, i).join('/'));
  }
  const list = [...names].sort().join('\n') + '\n';
  const r = await run('cpio', ['--quiet', '-o', '-H', 'newc', '--owner=0:0'], {
    cwd: tree,
    input: list,
    encoding: 'buffer',
    what: 'packing the sample initramfs',
  });
  return gzipSync(Buffer.from(r.stdout as Uint8Array));
}

export interface TreeOptions {
  hostname: string;
  mac: string;
  ip: string;
  kver: string;
  fstab: string;
  fillerMiB: number;
  /** root= on the kernel command line, and where grub finds the kernel ("/boot" or "" for a separate /boot). */
  rootDevice: string;
  grubPrefix: string;
}

/** The Debian-12-like root tree (merged /usr, as bookworm installs it). */
export async function buildTree(root: string, o: TreeOptions): Promise<Record<string, string>> {
  for (const d of [
    'etc',
    'usr/bin',
    'usr/sbin',
    'usr/lib',
    'boot/grub',
    'proc',
    'sys',
    'dev',
    'run',
    'tmp',
    'root',
    'home',
    'srv',
    'var/log',
  ])
    await mkdir(join(root, d), { recursive: true });
  for (const l of ['bin', 'sbin', 'lib']) await symlink(`usr/${l}`, join(root, l));
  const [addr, prefix] = o.ip.split('/');
  const gateway = addr!.replace(/\.\d+$/, '.1');
  const osRelease =
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"\n' +
    'VERSION_CODENAME=bookworm\nID=debian\nHOME_URL="https://www.debian.org/"\n';
  await put(root, 'usr/lib/os-release', osRelease);
  await symlink('../usr/lib/os-release', join(root, 'etc/os-release'));
  await put(root, 'etc/debian_version', '12.5\n');
  await put(root, 'etc/fstab', o.fstab);
  await put(root, 'etc/hostname', `${o.hostname}\n`);
  await put(
    root,
    'etc/hosts',
    `127.0.0.1\tlocalhost\n${addr}\t${o.hostname}.example.org\t${o.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
  );
  await put(
    root,
    'etc/network/interfaces',
    '# This file describes the network interfaces available on your system\nsource /etc/network/interfaces.d/*\n\n' +
      'auto lo\niface lo inet loopback\n\n' +
      `allow-hotplug eth0\niface eth0 inet static\n\taddress ${addr}/${prefix ?? '24'}\n\tgateway ${gateway}\n`,
  );
  await mkdir(join(root, 'etc/network/interfaces.d'), { recursive: true });
  await put(
    root,
    'etc/udev/rules.d/70-persistent-net.rules',
    '# This file was automatically generated by the /lib/udev/write_net_rules program\n' +
      `SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="${o.mac}", ATTR{dev_id}=="0x0", ATTR{type}=="1", KERNEL=="eth*", NAME="eth0"\n`,
  );
  await put(
    root,
    'etc/default/grub',
    'GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n' +
      'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="console=tty0"\n',
  );
  await put(
    root,
    'boot/grub/grub.cfg',
    '# DO NOT EDIT THIS FILE (generated by grub-mkconfig)\nset default="0"\nset timeout=5\n' +
      "menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os {\n" +
      "\tinsmod gzio\n\tinsmod part_msdos\n\tinsmod ext2\n\techo 'Loading Linux " +
      o.kver +
      " ...'\n" +
      `\tlinux ${o.grubPrefix}/vmlinuz-${o.kver} root=${o.rootDevice} ro console=tty0 quiet\n` +
      `\tinitrd ${o.grubPrefix}/initrd.img-${o.kver}\n}\n`,
  );
  await put(root, `boot/vmlinuz-${o.kver}`, seededBytes(`vmlinuz-${o.kver}`, 64 * 1024));
  await put(root, `boot/config-${o.kver}`, 'CONFIG_VIRTIO_BLK=m\nCONFIG_VIRTIO_NET=m\nCONFIG_VIRTIO_PCI=m\n');
  await put(root, `boot/System.map-${o.kver}`, '0000000000000000 A sample\n');
  const mods = `usr/lib/modules/${o.kver}`;
  for (const m of [
    'drivers/block/virtio_blk.ko',
    'drivers/scsi/virtio_scsi.ko',
    'drivers/virtio/virtio_pci.ko',
    'drivers/net/virtio_net.ko',
    'drivers/ata/ahci.ko',
    'fs/ext4/ext4.ko',
  ])
    await put(root, `${mods}/kernel/${m}`, `dummy module ${m}\n`);
  await put(
    root,
    `${mods}/modules.dep`,
    'kernel/drivers/block/virtio_blk.ko:\nkernel/drivers/scsi/virtio_scsi.ko:\nkernel/drivers/virtio/virtio_pci.ko:\nkernel/drivers/net/virtio_net.ko:\n',
  );
  await put(root, 'etc/initramfs-tools/initramfs.conf', 'MODULES=most\nBUSYBOX=auto\nCOMPRESS=zstd\n');
  await put(root, 'etc/initramfs-tools/modules', '# List of modules that you want to include in your initramfs.\n');
  await put(
    root,
    'usr/sbin/update-initramfs',
    '#!/bin/sh\n# sample: the real one rebuilds /boot/initrd.img-*\nexit 0\n',
    0o755,
  );
  await put(root, 'usr/lib/systemd/systemd', '#!/bin/sh\n# sample stand-in for systemd\nexit 0\n', 0o755);
  await symlink('/lib/systemd/systemd', join(root, 'usr/sbin/init'));
  await put(
    root,
    'usr/lib/systemd/system/getty@.service',
    "[Unit]\nDescription=Getty on %I\n[Service]\nExecStart=-/sbin/agetty -o '-p -- \\\\u' --noclear - $TERM\n",
  );
  await put(
    root,
    'usr/lib/systemd/system/serial-getty@.service',
    "[Unit]\nDescription=Serial Getty on %I\n[Service]\nExecStart=-/sbin/agetty -o '-p -- \\\\u' --keep-baud 115200,57600,38400,9600 - $TERM\n",
  );
  await mkdir(join(root, 'etc/systemd/system/getty.target.wants'), { recursive: true });
  await symlink(
    '/lib/systemd/system/getty@.service',
    join(root, 'etc/systemd/system/getty.target.wants/getty@tty1.service'),
  );
  await put(root, 'etc/machine-id', `${randomBytes(16).toString('hex')}\n`);

  // Live files with known content, some text, some incompressible.
  const digests: Record<string, string> = {};
  const live: [string, Buffer][] = [
    ['/root/README.txt', Buffer.from(`This is ${o.hostname}, a sample machine for ganeti-p2v.\n`.repeat(64))],
  ];
  const chunks = Math.max(0, Math.ceil(o.fillerMiB));
  for (let i = 0; i < chunks; i++) live.push([`/srv/data/blob-${i}.bin`, seededBytes(`${o.hostname}-blob-${i}`, MiB)]);
  for (const [p, c] of live) {
    await put(root, p, c);
    digests[p] = createHash('sha256').update(c).digest('hex');
  }
  return digests;
}
