/**
 * inspect: build the Inspection of the exposed overlay disks. Detection only:
 * nothing in the guest is changed (read-only mounts; any journal replay lands
 * in the overlay, never on the source).
 *
 *   1. partition table of each disk (sfdisk --json), blkid -p on each partition
 *      (probed at its offset in the disk file, no device needed);
 *   2. find / : mount each candidate filesystem read-only and look for
 *      /etc/os-release and /etc/fstab;
 *   3. decide which exported disk each of the guest's disk names is
 *      (guest/device-map.ts: from the guest's fstab and the root found, never
 *      from the live system's names) and map the fstab entries to partitions;
 *   4. mount the whole guest read-only as its fstab says and look at kernels,
 *      initramfs tool, bootloader, init system, network configuration; then
 *      decide the device map again with crypttab, RESUME= and the kernel
 *      command lines (root=, resume=) as more evidence;
 *   5. describe the live machine (vCPUs, memory, NIC MACs), unless given.
 *
 *   inspect(disks, { workDir, machine?, mapDevice?, log }): Promise<Inspection>
 *   parseFstab(text): FstabEntry[]   (guest/references.ts)
 *   parseOsRelease(text): Record<string, string>
 *   liveMachine(): Promise<Inspection['machine']>
 */
import { execa } from 'execa';
import { cpus, totalmem } from 'node:os';
import { mkdtemp, open, readdir, readFile, realpath, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { kernelCommandLines, type GuestReader } from '../guest/boot-configs.js';
import { buildDeviceMap, resolveDevice, type GuestDeviceMap, type GuestReference } from '../guest/device-map.js';
import { guestDiskPath, parseDeviceSpec, type DeviceMapping } from '../guest/device-names.js';
import {
  crypttabReferences,
  fstabReferences,
  INITRAMFS_RESUME,
  kernelArgReferences,
  parseFstab,
  resumeReferences,
  type FstabEntry,
} from '../guest/references.js';
import { P2vError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { requireProgram } from '../lib/run.js';
import { attachPartition, guestResolve, mountFilesystem, mountGuest, type ExposedDisk } from './mount.js';
import { isContainerPartition, readPartitionTable } from './partitions.js';
import type {
  Bootloader,
  InitramfsTool,
  InitSystem,
  InspectedDisk,
  InspectedKernel,
  InspectedOs,
  InspectedPartition,
  Inspection,
  NetworkConfigSystem,
} from './types.js';

export interface InspectDisk {
  /** What the user named (/dev/sda or an image file). */
  source: string;
  exposed: ExposedDisk;
  size: number;
}

export interface InspectOptions {
  workDir: string;
  /** Describe this machine instead of the live host. */
  machine?: Inspection['machine'];
  /** --map-device: the user's word on which exported disk a guest disk name is. */
  mapDevice?: DeviceMapping[];
  log: Logger;
}

export { parseFstab, type FstabEntry };

/** Filesystems that can hold a Linux root. */
const ROOT_FS = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs']);

/** os-release(5): KEY=value with optional shell quoting. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const m = raw.trim().match(/^([A-Z0-9_]+)=(.*)$/);
    if (!m) continue;
    let v = m[2]!;
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    out[m[1]!] = v.replace(/\\(["$`\\])/g, '$1');
  }
  return out;
}

/** blkid -p on a region of a file: TYPE, UUID, LABEL (undefined fields when nothing is found). */
async function probe(
  file: string,
  offset: number,
  size: number,
): Promise<{ fsType?: string; fsUuid?: string; fsLabel?: string }> {
  const r = await execa('blkid', ['-p', '-o', 'export', '--offset', String(offset), '--size', String(size), file], {
    reject: false,
  });
  // Exit 2: nothing recognised. Anything else non-zero: ambivalent or unreadable; report nothing rather than guess.
  if (r.exitCode !== 0) return {};
  const kv: Record<string, string> = {};
  for (const l of String(r.stdout).split('\n')) {
    const i = l.indexOf('=');
    if (i > 0) kv[l.slice(0, i)] = l.slice(i + 1);
  }
  return { fsType: kv.TYPE, fsUuid: kv.UUID?.toLowerCase(), fsLabel: kv.LABEL };
}

/**
 * The live system's name of a disk, for messages only ("loop0", "sdb",
 * "cciss/c0d0"; an image file gets sd<letter> by position). Never used to
 * map the guest's device names: see guest/device-map.ts.
 */
function liveName(source: string, index: number): string {
  if (source.startsWith('/dev/')) return source.slice('/dev/'.length);
  return `sd${String.fromCharCode(97 + (index % 26))}`;
}

/**
 * The by-id and by-path links of the live system that point at this very
 * device (whole disks only). They are derived from the hardware (model and
 * serial, bus path), so the guest saw the same names.
 */
async function hardwareLinks(source: string): Promise<string[]> {
  if (!source.startsWith('/dev/')) return [];
  const target = await realpath(source).catch(() => null);
  if (!target) return [];
  const out: string[] = [];
  for (const by of ['by-id', 'by-path']) {
    const dir = `/dev/disk/${by}`;
    for (const name of (await readdir(dir).catch(() => [] as string[])).sort()) {
      if (/-part\d+$/.test(name)) continue;
      if ((await realpath(join(dir, name)).catch(() => null)) === target) out.push(`disk/${by}/${name}`);
    }
  }
  return out;
}

/** A (disk, partition) reference; partition 0 is the whole disk. */
interface Ref {
  disk: number;
  partition: number;
}

async function readGuest(root: string, path: string, max = 1 << 20): Promise<string | null> {
  const p = await guestResolve(root, path);
  if (!p) return null;
  try {
    const st = await stat(p);
    if (!st.isFile()) return null;
    const fh = await open(p, 'r');
    try {
      const buf = Buffer.alloc(Math.min(st.size, max));
      await fh.read(buf, 0, buf.length, 0);
      return buf.toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return null;
  }
}

async function existsGuest(root: string, path: string, kind?: 'file' | 'dir'): Promise<boolean> {
  const p = await guestResolve(root, path);
  if (!p) return false;
  if (!kind) return true;
  try {
    const st = await stat(p);
    return kind === 'file' ? st.isFile() : st.isDirectory();
  } catch {
    return false;
  }
}

async function listGuest(root: string, dir: string): Promise<string[]> {
  const p = await guestResolve(root, dir);
  if (!p) return [];
  try {
    return (await readdir(p)).sort();
  } catch {
    return [];
  }
}

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

async function findKernels(root: string): Promise<InspectedKernel[]> {
  const boot = await listGuest(root, '/boot');
  const kernels: InspectedKernel[] = [];
  for (const f of boot) {
    const m = f.match(/^vmlinuz-(.+)$/);
    if (!m || !(await existsGuest(root, `/boot/${f}`, 'file'))) continue;
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
    kernels.push({
      version,
      vmlinuz: `/boot/${f}`,
      initrd,
      hasModules: await existsGuest(root, `/lib/modules/${version}`, 'dir'),
    });
  }
  return kernels.sort((a, b) => compareKernelVersions(b.version, a.version));
}

async function findInitramfsTool(root: string): Promise<InitramfsTool> {
  const any = async (paths: string[]) => {
    for (const p of paths) if (await existsGuest(root, p, 'file')) return true;
    return false;
  };
  if (await any(['/usr/sbin/update-initramfs', '/sbin/update-initramfs'])) return 'initramfs-tools';
  if (await any(['/usr/bin/dracut', '/usr/sbin/dracut', '/sbin/dracut'])) return 'dracut';
  if (await any(['/sbin/mkinitrd', '/usr/sbin/mkinitrd', '/usr/bin/mkinitrd'])) return 'mkinitrd';
  return 'unknown';
}

async function findBootloader(
  root: string,
): Promise<{ bootloader: Bootloader; grubConfigs: string[]; blsEntries: boolean }> {
  const grubConfigs: string[] = [];
  for (const p of ['/boot/grub/grub.cfg', '/boot/grub2/grub.cfg'])
    if (await existsGuest(root, p, 'file')) grubConfigs.push(p);
  for (const vendor of await listGuest(root, '/boot/efi/EFI')) {
    const p = `/boot/efi/EFI/${vendor}/grub.cfg`;
    if (await existsGuest(root, p, 'file')) grubConfigs.push(p);
  }
  const blsEntries = await existsGuest(root, '/boot/loader/entries', 'dir');
  let bootloader: Bootloader = 'unknown';
  if (grubConfigs.length) bootloader = 'grub2';
  else if (
    (await existsGuest(root, '/boot/grub/menu.lst', 'file')) ||
    (await existsGuest(root, '/boot/grub/grub.conf', 'file'))
  )
    bootloader = 'grub-legacy';
  else if (
    (await existsGuest(root, '/boot/extlinux/extlinux.conf', 'file')) ||
    (await existsGuest(root, '/boot/syslinux/syslinux.cfg', 'file'))
  )
    bootloader = 'extlinux';
  else if (
    (await existsGuest(root, '/boot/loader/loader.conf', 'file')) ||
    (await existsGuest(root, '/boot/efi/loader/loader.conf', 'file'))
  )
    bootloader = 'systemd-boot';
  return { bootloader, grubConfigs, blsEntries };
}

async function findInitSystem(root: string): Promise<InitSystem> {
  const init = await guestResolve(root, '/sbin/init');
  if (init && /systemd$/.test(init)) return 'systemd';
  if (
    (await existsGuest(root, '/lib/systemd/systemd', 'file')) ||
    (await existsGuest(root, '/usr/lib/systemd/systemd', 'file'))
  )
    return 'systemd';
  if (
    (await existsGuest(root, '/sbin/upstart', 'file')) ||
    ((await existsGuest(root, '/sbin/initctl', 'file')) && (await existsGuest(root, '/etc/init', 'dir')))
  )
    return 'upstart';
  if (await existsGuest(root, '/etc/inittab', 'file')) return 'sysvinit';
  return 'unknown';
}

async function findNetworkConfig(root: string): Promise<NetworkConfigSystem[]> {
  const found: NetworkConfigSystem[] = [];
  // netplan generates networkd or NetworkManager configuration, so it is the one to edit when present.
  if ((await listGuest(root, '/etc/netplan')).some((f) => /\.ya?ml$/.test(f))) found.push('netplan');
  const hasIface = (t: string | null) =>
    !!t && t.split('\n').some((l) => /^\s*iface\s+(\S+)/.test(l) && !/^\s*iface\s+lo\s/.test(l));
  let ifupdown = hasIface(await readGuest(root, '/etc/network/interfaces'));
  for (const f of await listGuest(root, '/etc/network/interfaces.d'))
    if (!ifupdown) ifupdown = hasIface(await readGuest(root, `/etc/network/interfaces.d/${f}`));
  if (ifupdown) found.push('ifupdown');
  if ((await listGuest(root, '/etc/NetworkManager/system-connections')).length) found.push('networkmanager');
  if ((await listGuest(root, '/etc/sysconfig/network-scripts')).some((f) => f.startsWith('ifcfg-') && f !== 'ifcfg-lo'))
    found.push('ifcfg');
  if ((await listGuest(root, '/etc/systemd/network')).some((f) => f.endsWith('.network')))
    found.push('systemd-networkd');
  return found;
}

/** Architecture from the ELF header of the guest's shell, else the kernel name. */
async function findArch(root: string, kernels: InspectedKernel[]): Promise<string> {
  for (const p of ['/bin/sh', '/usr/bin/sh', '/bin/bash', '/usr/bin/env']) {
    const host = await guestResolve(root, p);
    if (!host) continue;
    try {
      const fh = await open(host, 'r');
      const b = Buffer.alloc(20);
      await fh.read(b, 0, 20, 0);
      await fh.close();
      if (b.readUInt32BE(0) !== 0x7f454c46) continue;
      const machine = b[5] === 2 ? b.readUInt16BE(18) : b.readUInt16LE(18);
      const arch: Record<number, string> = {
        0x3e: 'x86_64',
        0x03: 'i686',
        0xb7: 'aarch64',
        0x28: 'armv7l',
        0x15: 'ppc64le',
        0x16: 's390x',
        0xf3: 'riscv64',
      };
      if (arch[machine]) return arch[machine]!;
    } catch {
      /* try the next one */
    }
  }
  for (const k of kernels) {
    if (/(amd64|x86_64)$/.test(k.version)) return 'x86_64';
    if (/(arm64|aarch64)$/.test(k.version)) return 'aarch64';
    if (/(686|i386|pae)$/.test(k.version)) return 'i686';
  }
  return 'unknown';
}

/** vCPUs, memory and NIC MACs of the machine we run on (the source machine, booted from a live image). */
export async function liveMachine(): Promise<Inspection['machine']> {
  const nics: { name: string; mac: string; physical: boolean; up: boolean }[] = [];
  for (const name of (await readdir('/sys/class/net').catch(() => [] as string[])).sort()) {
    if (name === 'lo') continue;
    const base = `/sys/class/net/${name}`;
    const read = (f: string) =>
      readFile(`${base}/${f}`, 'utf8').then(
        (s) => s.trim(),
        () => '',
      );
    const [mac, type, oper] = await Promise.all([read('address'), read('type'), read('operstate')]);
    if (type !== '1' || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac) || mac === '00:00:00:00:00:00') continue;
    const physical = !(await realpath(base).catch(() => base)).startsWith('/sys/devices/virtual/');
    nics.push({ name, mac, physical, up: oper === 'up' });
  }
  // On the live image the machine's own NICs are the physical ones; in a VM or container fall back to those up.
  const chosen = nics.some((n) => n.physical) ? nics.filter((n) => n.physical) : nics.filter((n) => n.up);
  return {
    cpus: cpus().length,
    memoryMiB: Math.floor(totalmem() / (1024 * 1024)),
    nics: chosen.map(({ name, mac }) => ({ name, mac })),
  };
}

interface RootCandidate {
  ref: Ref;
  osRelease: Record<string, string>;
  fstab: FstabEntry[];
  hostname?: string;
}

/** Mount one filesystem read-only for a quick look; always unmounted again. */
async function withProbeMount<T>(
  file: string,
  offset: number,
  size: number,
  fsType: string,
  workDir: string,
  body: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(workDir, 'p2v-probe-'));
  try {
    const part = await attachPartition(file, offset, size);
    try {
      const fs = await mountFilesystem(part.device, dir, fsType, { readOnly: true });
      try {
        return await body(dir);
      } finally {
        await fs.unmount();
      }
    } finally {
      await part.detach();
    }
  } finally {
    await rmdir(dir).catch(() => undefined);
  }
}

export async function inspect(disks: InspectDisk[], opts: InspectOptions): Promise<Inspection> {
  for (const p of ['sfdisk', 'blkid', 'losetup', 'mount', 'umount']) await requireProgram(p);
  const { log } = opts;
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    log.warn(m);
  };

  const inspected: InspectedDisk[] = [];
  for (const [index, given] of disks.entries()) {
    // The exposed file has the disk's size; callers that do not know it yet pass 0.
    const d = given.size > 0 ? given : { ...given, size: (await stat(given.exposed.path)).size };
    const table = await readPartitionTable(d.exposed.path);
    const disk: InspectedDisk = {
      index,
      source: d.source,
      sourceName: liveName(d.source, index),
      size: d.size,
      partitionTable: table.type,
      diskId: table.diskId,
      partitions: [],
    };
    const links = await hardwareLinks(d.source);
    if (links.length) disk.hardwareLinks = links;
    for (const p of table.partitions) {
      const ip: InspectedPartition = { number: p.number, start: p.start, size: p.size, type: p.type };
      if (p.partUuid) ip.partUuid = p.partUuid;
      if (p.name) ip.partLabel = p.name;
      if (p.bootable !== undefined) ip.bootable = p.bootable;
      if (!isContainerPartition(p)) {
        const fs = await probe(d.exposed.path, p.start, p.size);
        if (fs.fsType) ip.fsType = fs.fsType;
        if (fs.fsUuid) ip.fsUuid = fs.fsUuid;
        if (fs.fsLabel) ip.fsLabel = fs.fsLabel;
      }
      disk.partitions.push(ip);
    }
    if (table.type === 'none') {
      const fs = await probe(d.exposed.path, 0, d.size);
      if (fs.fsType)
        disk.wholeDiskFs = {
          fsType: fs.fsType,
          ...(fs.fsUuid ? { fsUuid: fs.fsUuid } : {}),
          ...(fs.fsLabel ? { fsLabel: fs.fsLabel } : {}),
        };
    }
    log.debug(
      `disk ${index} (${d.source}): ${table.type} table, ${disk.partitions.length} partitions${disk.wholeDiskFs ? `, whole-disk ${disk.wholeDiskFs.fsType}` : ''}`,
    );
    inspected.push(disk);
  }

  // Find the root filesystem(s).
  const roots: RootCandidate[] = [];
  for (const d of inspected) {
    const cands: { ref: Ref; fsType: string; offset: number; size: number }[] = [];
    if (d.wholeDiskFs && ROOT_FS.has(d.wholeDiskFs.fsType))
      cands.push({ ref: { disk: d.index, partition: 0 }, fsType: d.wholeDiskFs.fsType, offset: 0, size: d.size });
    for (const p of d.partitions)
      if (p.fsType && ROOT_FS.has(p.fsType))
        cands.push({ ref: { disk: d.index, partition: p.number }, fsType: p.fsType, offset: p.start, size: p.size });
    for (const c of cands) {
      const where = c.ref.partition ? `${d.sourceName} partition ${c.ref.partition}` : d.sourceName;
      try {
        const found = await withProbeMount(
          disks[d.index]!.exposed.path,
          c.offset,
          c.size,
          c.fsType,
          opts.workDir,
          async (dir) => {
            const osr = await readGuest(dir, '/etc/os-release');
            const fstab = await readGuest(dir, '/etc/fstab');
            if (osr === null || fstab === null) return null;
            const hostname = (await readGuest(dir, '/etc/hostname'))?.split('\n')[0]?.trim() || undefined;
            return { ref: c.ref, osRelease: parseOsRelease(osr), fstab: parseFstab(fstab), hostname };
          },
        );
        if (found) roots.push(found);
      } catch (e) {
        // The kernel's complaint says more to an admin than our command line does.
        const why =
          e instanceof P2vError && e.stderrTail
            ? e.stderrTail.split('\n').pop()!
            : e instanceof Error
              ? e.message
              : String(e);
        warn(`the ${c.fsType} filesystem on ${where} cannot be mounted: it is copied whole (${why})`);
      }
    }
  }

  const machine = opts.machine ?? (await liveMachine());
  if (roots.length === 0) {
    log.info('no operating system found: the disks are copied as data disks');
    return { disks: inspected, machine, warnings };
  }
  if (roots.length > 1)
    warn(
      `${roots.length} operating systems found; converting the first one (disk ${roots[0]!.ref.disk}, partition ${roots[0]!.ref.partition})`,
    );
  const root = roots[0]!;

  // Which exported disk each of the guest's disk names is, then where its fstab mounts each filesystem.
  const fstabRefs = fstabReferences(root.fstab);
  const mapOf = (references: GuestReference[]) =>
    buildDeviceMap({ disks: inspected, root: root.ref, references, explicit: opts.mapDevice });
  const setMountpoint = (ref: Ref, mp: string) => {
    const d = inspected[ref.disk]!;
    if (ref.partition === 0) {
      if (d.wholeDiskFs) d.wholeDiskFs.mountpoint = mp;
    } else {
      const p = d.partitions.find((x) => x.number === ref.partition);
      if (p) p.mountpoint = mp;
    }
  };
  const attribute = (map: GuestDeviceMap, report: boolean) => {
    setMountpoint(root.ref, '/');
    for (const e of fstabRefs) {
      const r = resolveDevice(map, inspected, e.spec);
      if (e.mountpoint === '/') {
        if (report && typeof r !== 'string' && (r.disk !== root.ref.disk || r.partition !== root.ref.partition))
          warn(
            `fstab mounts ${e.spec} on / but the root was found on disk ${root.ref.disk} partition ${root.ref.partition}`,
          );
        continue;
      }
      if (typeof r === 'string') {
        // An unmountable optional entry (noauto: a CD-ROM, a USB disk) is normal; anything else deserves a warning.
        // Guest disk names the map could not decide are reported once, below, with what to do.
        if (report && !e.optional && parseDeviceSpec(e.spec)?.kind !== 'disk')
          warn(`fstab entry ${e.spec} on ${e.mountpoint ?? 'swap'}: ${r}`);
        continue;
      }
      setMountpoint(r, e.use === 'swap' ? 'swap' : e.mountpoint!);
    }
  };
  attribute(mapOf(fstabRefs), false);

  const osr = root.osRelease;
  const base: Inspection = { disks: inspected, machine, warnings };
  // Look at the whole guest as it boots, with /boot, /usr … mounted from its fstab.
  const gm = await mountGuest(
    base,
    disks.map((d) => d.exposed),
    opts.workDir,
    { readOnly: true, warn },
  );
  let os: InspectedOs;
  try {
    const r = gm.root;
    const kernels = await findKernels(r);
    const boot = await findBootloader(r);
    // The rest of what the guest says about its devices, now that /boot and /etc are there.
    const reader: GuestReader = { read: (p) => readGuest(r, p), list: (p) => listGuest(r, p) };
    const crypttab = await readGuest(r, '/etc/crypttab');
    const resume = await readGuest(r, INITRAMFS_RESUME);
    const deviceMap = mapOf([
      ...fstabRefs,
      ...(crypttab === null ? [] : crypttabReferences(crypttab)),
      ...(resume === null ? [] : resumeReferences(resume)),
      ...kernelArgReferences(await kernelCommandLines(reader, boot)),
    ]);
    os = {
      distro: osr.ID ?? 'unknown',
      distroLike: (osr.ID_LIKE ?? '').split(/\s+/).filter(Boolean),
      version: osr.VERSION_ID ?? '',
      prettyName: osr.PRETTY_NAME ?? osr.NAME ?? osr.ID ?? 'Linux',
      ...(root.hostname ? { hostname: root.hostname } : {}),
      arch: await findArch(r, kernels),
      kernels,
      initramfsTool: await findInitramfsTool(r),
      bootloader: boot.bootloader,
      grubConfigs: boot.grubConfigs,
      blsEntries: boot.blsEntries,
      initSystem: await findInitSystem(r),
      networkConfig: await findNetworkConfig(r),
      root: root.ref,
      deviceMap,
    };
  } finally {
    await gm.unmountAll();
  }
  attribute(os.deviceMap, true);
  for (const m of os.deviceMap.disks)
    log.debug(`the guest's ${guestDiskPath(m.guestDisk)} is disk ${m.index}: ${m.evidence}`);
  for (const c of os.deviceMap.conflicts) warn(c);
  for (const u of os.deviceMap.undecided.filter((x) => x.matters))
    warn(
      `which exported disk is the guest's ${guestDiskPath(u.guestDisk)} (${u.references.join('; ')}) cannot be told: ` +
        `give --map-device ${guestDiskPath(u.guestDisk)}=N`,
    );
  if (os.kernels.length === 0) warn('no kernel found in /boot: the guest will not boot as it is');
  for (const k of os.kernels) if (!k.hasModules) warn(`kernel ${k.version} has no /lib/modules/${k.version}`);
  log.info(
    `found ${os.prettyName} on disk ${os.root.disk} partition ${os.root.partition}, ${os.kernels.length} kernel(s), ${os.bootloader}`,
  );
  return { disks: inspected, os, machine, warnings };
}
