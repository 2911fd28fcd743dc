/**
 * inspect: build the Inspection of the source disks. Detection only: nothing
 * in the guest is changed (read-only mounts; any journal replay lands in the
 * overlay, never on the source).
 *
 *   1. partition table and filesystems of each disk (disks.ts);
 *   2. find / : mount each candidate filesystem read-only and look for
 *      /etc/os-release and /etc/fstab (root.ts);
 *   3. decide which exported disk each of the guest's disk names is
 *      (guest/device-map.ts: from the guest's fstab and the root found, never
 *      from the live system's names) and map the fstab entries to partitions;
 *   4. mount the whole guest read-only as its fstab says and look at kernels
 *      and their initramfs images, initramfs tool, bootloader, init system,
 *      network configuration (detect.ts); then decide the device map again
 *      with crypttab, RESUME= and the kernel command lines as more evidence;
 *   5. how it boots: the EFI system partition's loaders (read with mtools),
 *      the BIOS boot path, GRUB's BIOS files in the guest (firmware.ts).
 *
 * The live machine (vCPUs, memory, NICs) is not guest knowledge: the caller
 * passes it in (exporter/live-machine.ts), as it passes the GuestMounter.
 *
 *   inspectGuest(disks, { machine, mounter, mapDevice?, log }): Promise<Inspection>
 */
import type { Logger } from '../../lib/log.js';
import { requireProgram } from '../../lib/run.js';
import { kernelCommandLines } from '../boot-configs.js';
import { buildDeviceMap, resolveDevice, type GuestDeviceMap, type GuestReference } from '../device-map.js';
import { guestDiskPath, parseDeviceSpec, type DeviceMapping } from '../device-names.js';
import { GuestTree } from '../files.js';
import {
  crypttabReferences,
  fstabReferences,
  INITRAMFS_RESUME,
  kernelArgReferences,
  resumeReferences,
} from '../references.js';
import type { InspectedBoot, InspectedDisk, InspectedOs, Inspection, MachineFacts } from '../types.js';
import { findBoot } from './firmware.js';
import { inspectDisk, probeFilesystem, type DiskImage } from './disks.js';
import { findVolume, pvRegions, readVolumeGroups, unsupportedLayouts } from '../lvm/index.js';
import { open } from 'node:fs/promises';
import { P2vError } from '../../lib/errors.js';
import {
  findArch,
  findBootloader,
  findInitramfsTool,
  findInitSystem,
  findKernels,
  findNetworkConfig,
} from './detect.js';
import { findRoots, type DiskRef, type GuestMounter } from './root.js';

export type { DiskImage } from './disks.js';
export type { GuestMounter } from './root.js';

export interface InspectGuestOptions {
  machine: MachineFacts;
  mounter: GuestMounter;
  /** --map-device: the user's word on which exported disk a guest disk name is. */
  mapDevice?: DeviceMapping[];
  /** --lvm-as-is: copy a volume group with LVs we cannot expose untouched instead of refusing. */
  lvmAsIs?: boolean;
  /** Layouts the caller found unsupported from the live system (multipath), named like unsupportedLayouts'. */
  notSupported?: string[];
  log: Logger;
}

/** Read bytes [offset, offset+length) of a disk file. */
async function readRange(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

export async function inspectGuest(disks: DiskImage[], opts: InspectGuestOptions): Promise<Inspection> {
  for (const p of ['sfdisk', 'blkid', 'losetup', 'mount', 'umount']) await requireProgram(p);
  const { log, machine } = opts;
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    log.warn(m);
  };

  const inspected: InspectedDisk[] = [];
  for (const [index, given] of disks.entries()) {
    const disk = await inspectDisk(given, index);
    log.debug(
      `disk ${index} (${given.source}): ${disk.partitionTable} table, ${disk.partitions.length} partitions${disk.wholeDiskFs ? `, whole-disk ${disk.wholeDiskFs.fsType}` : ''}`,
    );
    inspected.push(disk);
  }

  // Layouts we do not take apart yet: said once, before anything is changed or sent.
  const notYet = [...(opts.notSupported ?? []), ...unsupportedLayouts(inspected)];
  if (notYet.length)
    throw new P2vError('INSPECTION', `not supported yet: ${notYet.join(', ')}`, {
      hint: 'leave that disk out of --disk if the guest does not need it; otherwise this machine cannot be converted by p2v-export yet',
    });
  // LVM: the VGs' metadata read from the PVs themselves, and each LV's filesystem probed at its first range.
  const volumeGroups = await readVolumeGroups(
    pvRegions(inspected),
    (disk, offset, length) => readRange(disks[disk]!.path, offset, length),
    { asIs: opts.lvmAsIs, warn },
  );
  for (const v of volumeGroups.flatMap((g) => g.volumes)) {
    const first = v.ranges[0]!;
    const fs = await probeFilesystem(disks[first.disk]!.path, first.offset, first.size);
    if (fs.fsType) v.fsType = fs.fsType;
    if (fs.fsUuid) v.fsUuid = fs.fsUuid;
    if (fs.fsLabel) v.fsLabel = fs.fsLabel;
    log.debug(`LV ${v.id}: ${v.size} bytes in ${v.ranges.length} range(s), ${v.fsType ?? 'no filesystem'}`);
  }
  const lvm = volumeGroups.length ? { volumeGroups } : {};

  const roots = await findRoots(inspected, opts.mounter, warn, volumeGroups);
  if (roots.length === 0) {
    log.info('no operating system found: the disks are copied as data disks');
    return { disks: inspected, ...lvm, machine, warnings };
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
  const setMountpoint = (ref: DiskRef, mp: string) => {
    if (ref.volume) {
      const v = volumeGroups.flatMap((g) => g.volumes).find((x) => x.id === ref.volume);
      if (v) v.mountpoint = mp;
      return;
    }
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
      const lv = findVolume(volumeGroups, e.spec);
      if (lv) {
        if (e.mountpoint !== '/') lv.mountpoint = e.use === 'swap' ? 'swap' : e.mountpoint!;
        continue;
      }
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
  // Look at the whole guest as it boots, with /boot, /usr … mounted from its fstab.
  const gm = await opts.mounter.mountGuest({ disks: inspected, ...lvm, machine, warnings }, warn);
  let os: InspectedOs;
  let howBoots: InspectedBoot;
  try {
    const tree = new GuestTree(gm.root);
    const kernels = await findKernels(tree);
    const boot = await findBootloader(tree);
    // The rest of what the guest says about its devices, now that /boot and /etc are there.
    const crypttab = await tree.read('/etc/crypttab');
    const resume = await tree.read(INITRAMFS_RESUME);
    const deviceMap = mapOf([
      ...fstabRefs,
      ...(crypttab === null ? [] : crypttabReferences(crypttab)),
      ...(resume === null ? [] : resumeReferences(resume)),
      ...kernelArgReferences(await kernelCommandLines(tree, boot)),
    ]);
    os = {
      distro: osr.ID ?? 'unknown',
      distroLike: (osr.ID_LIKE ?? '').split(/\s+/).filter(Boolean),
      version: osr.VERSION_ID ?? '',
      prettyName: osr.PRETTY_NAME ?? osr.NAME ?? osr.ID ?? 'Linux',
      ...(root.hostname ? { hostname: root.hostname } : {}),
      arch: await findArch(tree, kernels),
      kernels,
      initramfsTool: await findInitramfsTool(tree),
      bootloader: boot.bootloader,
      grubConfigs: boot.grubConfigs,
      blsEntries: boot.blsEntries,
      initSystem: await findInitSystem(tree),
      networkConfig: await findNetworkConfig(tree),
      root: root.ref,
      deviceMap,
    };
    howBoots = await findBoot({
      disks: inspected,
      paths: disks.map((d) => d.path),
      read: (disk, offset, length) => readRange(disks[disk]!.path, offset, length),
      tree,
      distro: os.distro,
      warn,
    });
    // systemd-boot's loader.conf is on the ESP, which is not mounted: the ESP's own loader says it.
    if (os.bootloader === 'unknown' && howBoots.efiBootloader?.kind === 'systemd-boot') os.bootloader = 'systemd-boot';
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
  // A root on LVM needs the lvm tool in the initramfs; the fixups keep it (a rebuild runs the guest's own hooks).
  const newest = os.kernels[0]?.initrdContent;
  if (os.root.volume && newest && 'modules' in newest && !newest.lvm)
    warn(
      `the root is on LV ${os.root.volume} but the initramfs of ${os.kernels[0]!.version} has no lvm tool: ` +
        'the guest may not find its root; install lvm2 on the source and run update-initramfs -u (or dracut -f)',
    );
  for (const k of os.kernels) if (!k.hasModules) warn(`kernel ${k.version} has no /lib/modules/${k.version}`);
  log.info(
    `found ${os.prettyName} on disk ${os.root.disk} partition ${os.root.partition}, ${os.kernels.length} kernel(s), ${os.bootloader}, ${howBoots.firmware === 'unknown' ? 'no boot path found (no ESP loader, no BIOS boot code)' : `boots with ${howBoots.firmware === 'both' ? 'UEFI and BIOS' : howBoots.firmware.toUpperCase()}`}`,
  );
  return { disks: inspected, ...lvm, os, boot: howBoots, machine, warnings };
}
