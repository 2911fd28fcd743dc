/**
 * Detectors: what a mounted guest tree says about itself — kernels and their
 * initramfs images, the initramfs tool, bootloader and where its configs are,
 * init system, network configuration system, architecture. Each reads the
 * guest through GuestTree (guest/files.ts) only, and changes nothing.
 */
import { listInitramfs } from '../initramfs.js';
import type { GuestTree } from '../files.js';
import { moduleNamesOf } from '../module-names.js';
import type { Bootloader, InitramfsTool, InitSystem, InspectedKernel, NetworkConfigSystem } from '../types.js';

/** Compare kernel versions numerically part by part ("6.1.0-18" > "6.1.0-9"). */
export function compareKernelVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    const c = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
    if (c !== 0) return c;
  }
  return 0;
}

/** Which kernel modules an initramfs image holds, or why it cannot be told. */
export async function initrdContent(tree: GuestTree, initrd: string): Promise<InspectedKernel['initrdContent']> {
  if (!(await tree.isFile(initrd))) return undefined;
  try {
    const names = await listInitramfs(await tree.hostPath(initrd));
    // The lvm binary is what activates LVM volumes at boot (lvm2's initramfs hook, dracut's lvm module).
    const lvm = names.some((n) => /^(\.\/)?(usr\/)?s?bin\/lvm$/.test(n));
    return { modules: [...moduleNamesOf(names)].sort(), ...(lvm ? { lvm: true } : {}) };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

export async function findKernels(tree: GuestTree): Promise<InspectedKernel[]> {
  const boot = await tree.list('/boot');
  const kernels: InspectedKernel[] = [];
  for (const f of boot) {
    const m = f.match(/^vmlinuz-(.+)$/);
    if (!m || !(await tree.isFile(`/boot/${f}`))) continue;
    const version = m[1]!;
    let initrd: string | undefined;
    // Debian/Ubuntu, RHEL/Fedora (dracut), SUSE naming.
    for (const cand of [
      `initrd.img-${version}`,
      `initramfs-${version}.img`,
      `initrd-${version}`,
      `initrd-${version}.img`,
    ]) {
      if (boot.includes(cand)) {
        initrd = `/boot/${cand}`;
        break;
      }
    }
    const k: InspectedKernel = {
      version,
      vmlinuz: `/boot/${f}`,
      initrd,
      hasModules: await tree.isDir(`/lib/modules/${version}`),
    };
    if (initrd) {
      const content = await initrdContent(tree, initrd);
      if (content) k.initrdContent = content;
    }
    kernels.push(k);
  }
  return kernels.sort((a, b) => compareKernelVersions(b.version, a.version));
}

/** Where each initramfs tool's program lives; the fixups check the same list before a rebuild. */
export const INITRAMFS_TOOL_PATHS: Record<Exclude<InitramfsTool, 'unknown'>, string[]> = {
  'initramfs-tools': ['/usr/sbin/update-initramfs', '/sbin/update-initramfs'],
  dracut: ['/usr/bin/dracut', '/usr/sbin/dracut', '/sbin/dracut'],
  mkinitrd: ['/sbin/mkinitrd', '/usr/sbin/mkinitrd', '/usr/bin/mkinitrd'],
};

async function anyFile(tree: GuestTree, paths: string[]): Promise<boolean> {
  for (const p of paths) if (await tree.isFile(p)) return true;
  return false;
}

export async function findInitramfsTool(tree: GuestTree): Promise<InitramfsTool> {
  for (const tool of ['initramfs-tools', 'dracut', 'mkinitrd'] as const)
    if (await anyFile(tree, INITRAMFS_TOOL_PATHS[tool])) return tool;
  return 'unknown';
}

export async function findBootloader(
  tree: GuestTree,
): Promise<{ bootloader: Bootloader; grubConfigs: string[]; blsEntries: boolean }> {
  const grubConfigs: string[] = [];
  for (const p of ['/boot/grub/grub.cfg', '/boot/grub2/grub.cfg']) if (await tree.isFile(p)) grubConfigs.push(p);
  for (const vendor of await tree.list('/boot/efi/EFI')) {
    const p = `/boot/efi/EFI/${vendor}/grub.cfg`;
    if (await tree.isFile(p)) grubConfigs.push(p);
  }
  const blsEntries = await tree.isDir('/boot/loader/entries');
  let bootloader: Bootloader = 'unknown';
  if (grubConfigs.length) bootloader = 'grub2';
  else if (await anyFile(tree, ['/boot/grub/menu.lst', '/boot/grub/grub.conf'])) bootloader = 'grub-legacy';
  else if (await anyFile(tree, ['/boot/extlinux/extlinux.conf', '/boot/syslinux/syslinux.cfg']))
    bootloader = 'extlinux';
  else if (await anyFile(tree, ['/boot/loader/loader.conf', '/boot/efi/loader/loader.conf']))
    bootloader = 'systemd-boot';
  return { bootloader, grubConfigs, blsEntries };
}

export async function findInitSystem(tree: GuestTree): Promise<InitSystem> {
  if ((await tree.exists('/sbin/init')) && /systemd$/.test(await tree.hostPath('/sbin/init'))) return 'systemd';
  if (await anyFile(tree, ['/lib/systemd/systemd', '/usr/lib/systemd/systemd'])) return 'systemd';
  if ((await tree.isFile('/sbin/upstart')) || ((await tree.isFile('/sbin/initctl')) && (await tree.isDir('/etc/init'))))
    return 'upstart';
  if (await tree.isFile('/etc/inittab')) return 'sysvinit';
  return 'unknown';
}

export async function findNetworkConfig(tree: GuestTree): Promise<NetworkConfigSystem[]> {
  const found: NetworkConfigSystem[] = [];
  // netplan generates networkd or NetworkManager configuration, so it is the one to edit when present.
  if ((await tree.list('/etc/netplan')).some((f) => /\.ya?ml$/.test(f))) found.push('netplan');
  const hasIface = (t: string | null) =>
    !!t && t.split('\n').some((l) => /^\s*iface\s+(\S+)/.test(l) && !/^\s*iface\s+lo\s/.test(l));
  let ifupdown = hasIface(await tree.read('/etc/network/interfaces'));
  for (const f of await tree.list('/etc/network/interfaces.d'))
    if (!ifupdown) ifupdown = hasIface(await tree.read(`/etc/network/interfaces.d/${f}`));
  if (ifupdown) found.push('ifupdown');
  if ((await tree.list('/etc/NetworkManager/system-connections')).length) found.push('networkmanager');
  if ((await tree.list('/etc/sysconfig/network-scripts')).some((f) => f.startsWith('ifcfg-') && f !== 'ifcfg-lo'))
    found.push('ifcfg');
  if ((await tree.list('/etc/systemd/network')).some((f) => f.endsWith('.network'))) found.push('systemd-networkd');
  return found;
}

const ELF_MACHINE: Record<number, string> = {
  0x3e: 'x86_64',
  0x03: 'i686',
  0xb7: 'aarch64',
  0x28: 'armv7l',
  0x15: 'ppc64le',
  0x16: 's390x',
  0xf3: 'riscv64',
};

/** Architecture from the ELF header of the guest's shell, else the kernel name. */
export async function findArch(tree: GuestTree, kernels: InspectedKernel[]): Promise<string> {
  for (const p of ['/bin/sh', '/usr/bin/sh', '/bin/bash', '/usr/bin/env']) {
    const b = await tree.head(p, 20);
    if (!b || b.length < 20 || b.readUInt32BE(0) !== 0x7f454c46) continue;
    const machine = b[5] === 2 ? b.readUInt16BE(18) : b.readUInt16LE(18);
    if (ELF_MACHINE[machine]) return ELF_MACHINE[machine]!;
  }
  for (const k of kernels) {
    if (/(amd64|x86_64)$/.test(k.version)) return 'x86_64';
    if (/(arm64|aarch64)$/.test(k.version)) return 'aarch64';
    if (/(686|i386|pae)$/.test(k.version)) return 'i686';
  }
  return 'unknown';
}
