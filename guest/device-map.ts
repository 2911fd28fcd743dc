/**
 * The guest's device map: which exported disk each disk name of the guest
 * ("sda", "nvme0n1", "cciss/c0d0", "disk/by-id/…") is, decided from what the
 * guest itself says, never from the names the live system gives the disks
 * (on a live image the source disk is as often sdb, nvme0n1 or loop0 as sda).
 *
 * Evidence, strongest first:
 *
 *   1. --map-device GUEST=INDEX from the user;
 *   2. the root: a name that fstab mounts on / (or that root= names) is the
 *      disk holding the root filesystem inspection found, at that partition;
 *   3. a by-id/by-path link that the live system has for the same device
 *      (it names the hardware, not the probe order);
 *   4. fit: the disk is the only exported one whose partitions fit every
 *      reference to the name (partition numbers exist, fstab's type agrees
 *      with blkid's, swap is swap, a partition fstab mounts elsewhere by
 *      UUID/LABEL is not it, another kernel name does not already own it);
 *   5. the guest's order is no evidence by itself: sda is the first disk the
 *      old kernel probed, not the first --disk. Where it would break a tie
 *      (one disk exported, one disk name used) rule 4 already decides.
 *
 * Every mapping must land each reference on an existing partition of a
 * compatible type; contradictions are recorded as conflicts. Names left
 * undecided are listed; `requireResolved` refuses the export when one of them
 * matters (an fstab entry without noauto/nofail, root=, resume=, a crypttab
 * entry without noauto/nofail) — an instance that cannot boot is worse than a
 * question asked before anything is sent.
 *
 *   buildDeviceMap(input): GuestDeviceMap
 *   resolveDevice(map, disks, spec): DeviceLocation | string
 *   requireResolved(map): void
 */
import { P2vError } from '../lib/errors.js';
import { guestDiskPath, parseDeviceSpec, type DeviceMapping, type IdentitySpec } from './device-names.js';

/** What the map needs to know of a partition (a subset of exporter's InspectedPartition). */
export interface MapPartition {
  number: number;
  fsType?: string;
  fsUuid?: string;
  fsLabel?: string;
  partUuid?: string;
  partLabel?: string;
}

/** What the map needs to know of an exported disk (a subset of exporter's InspectedDisk). */
export interface MapDisk {
  index: number;
  partitions: MapPartition[];
  wholeDiskFs?: { fsType: string; fsUuid?: string; fsLabel?: string };
  /** by-id/by-path links ("disk/by-id/ata-X") that name this very device on the live system. */
  hardwareLinks?: string[];
}

/** How the guest uses a device it names ('device': any partition, type not checked). */
export type ReferenceUse = 'mount' | 'swap' | 'root' | 'resume' | 'crypt' | 'device';

/** One place where the guest names a device. */
export interface GuestReference {
  /** As written: "/dev/sda1", "UUID=…". */
  spec: string;
  /** Guest file it is in: "/etc/fstab", "/boot/grub/grub.cfg". */
  file: string;
  use: ReferenceUse;
  /** fstab's mount point, for use 'mount'. */
  mountpoint?: string;
  /** fstab's type field ("ext4", "auto", "udf,iso9660"), for use 'mount'. */
  vfstype?: string;
  /** noauto or nofail: the guest boots without it. */
  optional: boolean;
}

export interface MappedDisk {
  /** The guest's disk key ("sda"); its path is /dev/KEY. */
  guestDisk: string;
  /** Exported disk index (--disk order). */
  index: number;
  /** Why, in words, for --inspect and the log. */
  evidence: string;
}

export interface UndecidedDisk {
  guestDisk: string;
  /** Exported disks that fit every reference. */
  candidates: number[];
  /** The references to it, "/etc/fstab: /dev/sdb1 on /srv". */
  references: string[];
  /** Some reference is needed to boot (not noauto/nofail). */
  matters: boolean;
}

export interface GuestDeviceMap {
  disks: MappedDisk[];
  undecided: UndecidedDisk[];
  /** Contradictory evidence, one sentence each. Any conflict stops the export. */
  conflicts: string[];
}

export interface DeviceMapInput {
  disks: MapDisk[];
  /** Where inspection found the root filesystem (partition 0: the whole disk). */
  root: { disk: number; partition: number };
  references: GuestReference[];
  /** --map-device. */
  explicit?: DeviceMapping[];
}

/** A (disk index, partition) pair; partition 0 is the whole disk. */
export interface DeviceLocation {
  disk: number;
  partition: number;
}

/** blkid's type family: fstab may say ext3 for what blkid calls ext4, vfat for msdos. */
function family(t: string): string {
  if (/^ext[234]$/.test(t)) return 'ext';
  if (['vfat', 'msdos', 'fat', 'umsdos'].includes(t)) return 'fat';
  return t;
}

type FsView = { fsType?: string } | undefined;

function fsAt(d: MapDisk, partition: number): FsView | null {
  if (partition === 0) return d.wholeDiskFs ?? {};
  return d.partitions.find((p) => p.number === partition) ?? null;
}

/** Does a reference's use agree with what blkid found there? */
function typeFits(ref: GuestReference, fs: FsView): boolean {
  const t = fs?.fsType;
  switch (ref.use) {
    case 'swap':
      return t === 'swap';
    case 'resume':
      return t === 'swap';
    case 'crypt':
      return t === undefined || t === 'crypto_LUKS';
    case 'device':
      return true;
    case 'root':
      return t !== undefined && t !== 'swap';
    case 'mount': {
      if (t === undefined) return false;
      const want = (ref.vfstype ?? 'auto').split(',');
      if (want.includes('auto')) return t !== 'swap';
      return want.some((w) => family(w) === family(t));
    }
  }
}

const describeRef = (r: GuestReference) =>
  `${r.file}: ${r.spec}${r.use === 'mount' ? ` on ${r.mountpoint}` : r.use === 'swap' ? ' (swap)' : r.use === 'crypt' ? ' (crypttab)' : ''}`;

const sameLoc = (a: DeviceLocation, b: DeviceLocation) => a.disk === b.disk && a.partition === b.partition;

/** Look a filesystem or partition up by UUID, LABEL, PARTUUID or PARTLABEL. */
function findIdentity(disks: MapDisk[], id: IdentitySpec): DeviceLocation | null {
  const eq = (a: string | undefined, ci: boolean) =>
    a !== undefined && (ci ? a.toLowerCase() === id.value.toLowerCase() : a === id.value);
  for (const d of disks) {
    const w = d.wholeDiskFs;
    if (w && ((id.key === 'UUID' && eq(w.fsUuid, true)) || (id.key === 'LABEL' && eq(w.fsLabel, false))))
      return { disk: d.index, partition: 0 };
    for (const p of d.partitions) {
      const hit =
        (id.key === 'UUID' && eq(p.fsUuid, true)) ||
        (id.key === 'LABEL' && eq(p.fsLabel, false)) ||
        (id.key === 'PARTUUID' && eq(p.partUuid, true)) ||
        (id.key === 'PARTLABEL' && eq(p.partLabel, false));
      if (hit) return { disk: d.index, partition: p.number };
    }
  }
  return null;
}

export function buildDeviceMap(input: DeviceMapInput): GuestDeviceMap {
  const { disks, root } = input;
  const conflicts: string[] = [];

  // Mount points already known by identity (and the root's "/"): a named device cannot be them for another mount.
  const claims: { loc: DeviceLocation; mountpoint: string }[] = [{ loc: root, mountpoint: '/' }];
  const refsOf = new Map<string, { ref: GuestReference; partition: number; kernel: boolean }[]>();
  for (const ref of input.references) {
    const spec = parseDeviceSpec(ref.spec);
    if (!spec) continue;
    if (spec.kind === 'identity') {
      const loc = findIdentity(disks, spec);
      if (loc && ref.use === 'mount' && ref.mountpoint) claims.push({ loc, mountpoint: ref.mountpoint });
      continue;
    }
    if (spec.kind !== 'disk') continue;
    const list = refsOf.get(spec.disk) ?? [];
    list.push({ ref, partition: spec.partition, kernel: spec.kernel });
    refsOf.set(spec.disk, list);
  }

  const isRootRef = (r: GuestReference) => r.use === 'root' || (r.use === 'mount' && r.mountpoint === '/');
  /** Why disk `d` cannot be guest disk `key`, or null when every reference fits. */
  const misfit = (key: string, d: MapDisk): string | null => {
    for (const { ref, partition } of refsOf.get(key) ?? []) {
      const here = { disk: d.index, partition };
      const fs = fsAt(d, partition);
      const where = partition ? `disk ${d.index} partition ${partition}` : `disk ${d.index}`;
      if (fs === null) return `${describeRef(ref)}, but ${where} does not exist`;
      if (isRootRef(ref) && !sameLoc(here, root))
        return `${describeRef(ref)} names the root, which is on disk ${root.disk}${root.partition ? ` partition ${root.partition}` : ''}`;
      if (!typeFits(ref, fs))
        return `${describeRef(ref)}${ref.vfstype ? ` (${ref.vfstype})` : ''}, but ${where} holds ${fs?.fsType ?? 'no filesystem'}`;
      if (ref.use === 'mount') {
        const other = claims.find((c) => sameLoc(c.loc, here) && c.mountpoint !== ref.mountpoint);
        if (other) return `${describeRef(ref)}, but ${where} is mounted on ${other.mountpoint}`;
      }
    }
    return null;
  };
  const fitting = (key: string) => disks.filter((d) => misfit(key, d) === null).map((d) => d.index);

  const fixed = new Map<string, { index: number; evidence: string }>();
  const fix = (key: string, index: number, evidence: string) => {
    const d = disks.find((x) => x.index === index);
    const why = d ? misfit(key, d) : `there is no exported disk ${index}`;
    if (why) conflicts.push(`${guestDiskPath(key)} is disk ${index} (${evidence}), yet ${why}`);
    fixed.set(key, { index, evidence });
  };

  for (const m of input.explicit ?? []) {
    if (!disks.some((d) => d.index === m.index))
      throw new P2vError(
        'USAGE',
        `--map-device ${guestDiskPath(m.guestDisk)}=${m.index}: there is no disk ${m.index} (${disks.length} exported)`,
        { hint: `the index is the position of the disk in --disk, from 0 to ${disks.length - 1}` },
      );
    const prior = fixed.get(m.guestDisk);
    if (prior && prior.index !== m.index)
      throw new P2vError(
        'USAGE',
        `--map-device maps ${guestDiskPath(m.guestDisk)} twice, to ${prior.index} and ${m.index}`,
      );
    fix(m.guestDisk, m.index, `--map-device`);
  }

  for (const [key, refs] of refsOf) {
    const r = refs.find((x) => isRootRef(x.ref));
    if (!r) continue;
    const evidence = `${describeRef(r.ref)}: the root filesystem inspection found`;
    const prior = fixed.get(key);
    if (prior) {
      if (prior.index !== root.disk)
        conflicts.push(
          `--map-device says ${guestDiskPath(key)} is disk ${prior.index}, but ${evidence} is on disk ${root.disk}`,
        );
      continue;
    }
    fix(key, root.disk, evidence);
  }

  for (const d of disks) {
    for (const link of d.hardwareLinks ?? []) {
      if (!refsOf.has(link) || fixed.has(link)) continue;
      fix(link, d.index, 'the live system has the same by-id/by-path link for this disk');
    }
  }

  // Fit, with kernel names one per disk: a disk another kernel name owns is not a candidate.
  const kernelKeys = [...refsOf].filter(([, refs]) => refs[0]!.kernel).map(([k]) => k);
  const ownedBy = (index: number, except: string) =>
    kernelKeys.some((k) => k !== except && fixed.get(k)?.index === index);
  const candidatesOf = (key: string) => {
    const kernel = refsOf.get(key)![0]!.kernel;
    return fitting(key).filter((i) => !kernel || !ownedBy(i, key));
  };
  for (let changed = true; changed;) {
    changed = false;
    for (const [key, refs] of refsOf) {
      if (fixed.has(key) || refs.every((r) => r.ref.optional)) continue;
      const c = candidatesOf(key);
      if (c.length !== 1) continue;
      const shown = refs.map((r) => describeRef(r.ref)).join('; ');
      fix(key, c[0]!, `the only exported disk that fits ${shown}`);
      changed = true;
    }
  }

  for (let i = 0; i < kernelKeys.length; i++)
    for (let j = i + 1; j < kernelKeys.length; j++) {
      const a = fixed.get(kernelKeys[i]!);
      const b = fixed.get(kernelKeys[j]!);
      if (a && b && a.index === b.index)
        conflicts.push(
          `${guestDiskPath(kernelKeys[i]!)} and ${guestDiskPath(kernelKeys[j]!)} are two disks of the guest, but both would be disk ${a.index}`,
        );
    }

  const undecided: UndecidedDisk[] = [];
  for (const [key, refs] of refsOf) {
    if (fixed.has(key)) continue;
    undecided.push({
      guestDisk: key,
      candidates: candidatesOf(key),
      references: refs.map((r) => describeRef(r.ref)),
      matters: refs.some((r) => !r.ref.optional),
    });
  }
  return {
    disks: [...fixed]
      .map(([guestDisk, f]) => ({ guestDisk, index: f.index, evidence: f.evidence }))
      .sort((a, b) => a.guestDisk.localeCompare(b.guestDisk)),
    undecided: undecided.sort((a, b) => a.guestDisk.localeCompare(b.guestDisk)),
    conflicts: [...new Set(conflicts)],
  };
}

/**
 * The exported (disk, partition) a device spec names in the guest, or why it
 * names none: identities are looked up on the disks, disk names through the map.
 */
export function resolveDevice(map: GuestDeviceMap, disks: MapDisk[], spec: string): DeviceLocation | string {
  const s = parseDeviceSpec(spec);
  if (!s) return `${spec} is not a local block device`;
  if (s.kind === 'stable')
    return s.why === 'removable'
      ? `${spec} is a removable drive`
      : `${spec} is on LVM, device-mapper or RAID, which is not supported`;
  if (s.kind === 'identity') {
    const loc = findIdentity(disks, s);
    return loc ?? `no filesystem with ${s.key} ${s.value}`;
  }
  const m = map.disks.find((x) => x.guestDisk === s.disk);
  if (!m) return `${spec} names a disk (${guestDiskPath(s.disk)}) that is not matched to an exported disk`;
  const d = disks.find((x) => x.index === m.index)!;
  if (s.partition !== 0 && !d.partitions.some((p) => p.number === s.partition))
    return `${spec} names a partition that does not exist on disk ${m.index}`;
  return { disk: m.index, partition: s.partition };
}

/** Refuse (INSPECTION) when evidence contradicts itself or a name the guest needs to boot is undecided. */
export function requireResolved(map: GuestDeviceMap): void {
  if (map.conflicts.length > 0)
    throw new P2vError('INSPECTION', `the guest's device names contradict each other: ${map.conflicts.join('; ')}`, {
      hint: 'check the --map-device options against p2v-export --inspect, or fix the source fstab and boot configuration',
    });
  const open = map.undecided.filter((u) => u.matters);
  if (open.length === 0) return;
  const what = open.map((u) => {
    const fits =
      u.candidates.length === 0
        ? 'no exported disk fits'
        : u.candidates.length === 1
          ? `only disk ${u.candidates[0]} fits, but the evidence is too weak`
          : `disks ${u.candidates.join(' and ')} ${u.candidates.length === 2 ? 'both' : 'all'} fit`;
    return `${guestDiskPath(u.guestDisk)} (${u.references.join('; ')}): ${fits}`;
  });
  const example = open.map((u) => `--map-device ${guestDiskPath(u.guestDisk)}=${u.candidates[0] ?? 'N'}`).join(' ');
  throw new P2vError('INSPECTION', `cannot tell which exported disk the guest calls ${what.join(', nor ')}`, {
    hint:
      `say it with ${example} (the number is the disk's position in --disk, from 0; ` +
      'p2v-export --inspect lists the disks), or export the missing disk too',
  });
}
