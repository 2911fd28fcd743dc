/**
 * LVM2 volume groups read from the PVs on the exported disks, without LVM's
 * tools or device-mapper: the label and metadata-area headers (label.ts), the
 * newest text metadata of each VG (config.ts, volume-group.ts), and where each
 * logical volume's bytes are. The caller gives a function that reads byte
 * ranges of a disk; nothing else is touched.
 *
 *   readVolumeGroups(pvs, read, { asIs, warn }): Promise<InspectedVolumeGroup[]>
 *   findVolume(vgs, spec): InspectedVolume | null   — /dev/mapper/vg-lv, /dev/vg/lv, UUID=, LABEL=
 *   unsupportedLayouts(disks): string[]             — MD RAID and LUKS members, by blkid type
 */
import { P2vError } from '../../lib/errors.js';
import type { InspectedDisk, InspectedVolume, InspectedVolumeGroup } from '../types.js';
import { parseConfig } from './config.js';
import { findLabel, LABEL_SCAN_BYTES, MDA_HEADER_SIZE, metadataRanges, parseMdaHeader } from './label.js';
import {
  freeRanges,
  lvRanges,
  mapperName,
  parseVolumeGroup,
  unsupportedReason,
  type LvmVolumeGroup,
  type PvPlacement,
} from './volume-group.js';

export { mapperName } from './volume-group.js';

/** A region blkid calls LVM2_member: a partition, or a whole disk (partition 0). */
export interface PvRegion {
  disk: number;
  partition: number;
  start: number;
  size: number;
  /** "sda partition 2", for messages. */
  where: string;
}

export type ReadBytes = (disk: number, offset: number, length: number) => Promise<Buffer>;

export interface ReadVolumeGroupsOptions {
  /** --lvm-as-is: a VG with LVs we cannot expose is copied untouched instead of refused. */
  asIs?: boolean;
  warn: (m: string) => void;
}

/** The PV regions of the inspected disks (blkid TYPE LVM2_member). */
export function pvRegions(disks: InspectedDisk[]): PvRegion[] {
  const out: PvRegion[] = [];
  for (const d of disks) {
    if (d.wholeDiskFs?.fsType === 'LVM2_member')
      out.push({ disk: d.index, partition: 0, start: 0, size: d.size, where: d.sourceName });
    for (const p of d.partitions)
      if (p.fsType === 'LVM2_member')
        out.push({
          disk: d.index,
          partition: p.number,
          start: p.start,
          size: p.size,
          where: `${d.sourceName} partition ${p.number}`,
        });
  }
  return out;
}

/** blkid types of layouts we do not take apart yet, with their names for the message. */
const NOT_YET: Record<string, string> = {
  linux_raid_member: 'MD RAID member',
  crypto_LUKS: 'LUKS encrypted volume',
  mpath_member: 'multipath member',
  isw_raid_member: 'Intel firmware RAID member',
  ddf_raid_member: 'DDF firmware RAID member',
};

/** Every MD RAID, LUKS or multipath region of the disks, one phrase each ("MD RAID member on sda partition 2"). */
export function unsupportedLayouts(disks: InspectedDisk[]): string[] {
  const out: string[] = [];
  for (const d of disks) {
    const t = d.wholeDiskFs?.fsType;
    if (t && NOT_YET[t]) out.push(`${NOT_YET[t]} on ${d.sourceName}`);
    for (const p of d.partitions)
      if (p.fsType && NOT_YET[p.fsType]) out.push(`${NOT_YET[p.fsType]} on ${d.sourceName} partition ${p.number}`);
  }
  return out;
}

interface Found {
  vg: LvmVolumeGroup;
}

/** Read every VG whose PVs are on the given regions; the newest metadata (highest seqno) wins. */
export async function readVolumeGroups(
  regions: PvRegion[],
  read: ReadBytes,
  opts: ReadVolumeGroupsOptions,
): Promise<InspectedVolumeGroup[]> {
  const labels = new Map<string, PvRegion>();
  const byVg = new Map<string, Found>();
  for (const r of regions) {
    const label = findLabel(await read(r.disk, r.start, Math.min(LABEL_SCAN_BYTES, r.size)));
    if (!label) {
      opts.warn(`${r.where} looks like an LVM physical volume but has no LVM2 label: it is copied whole`);
      continue;
    }
    labels.set(label.uuid, r);
    for (const area of label.metadataAreas) {
      const hdr = parseMdaHeader(await read(r.disk, r.start + area.offset, MDA_HEADER_SIZE));
      const parts: Buffer[] = [];
      for (const t of metadataRanges(area.offset, hdr)) parts.push(await read(r.disk, r.start + t.offset, t.size));
      if (parts.length === 0) continue;
      const text = Buffer.concat(parts).toString('utf8').replace(/\0+$/, '');
      const vg = parseVolumeGroup(parseConfig(text));
      const known = byVg.get(vg.uuid);
      if (!known || known.vg.seqno < vg.seqno) byVg.set(vg.uuid, { vg });
    }
  }
  const out: InspectedVolumeGroup[] = [];
  for (const { vg } of byVg.values()) {
    const at: PvPlacement = new Map();
    const pvs: InspectedVolumeGroup['pvs'] = [];
    for (const pv of vg.pvs) {
      const r = labels.get(pv.uuid);
      if (!r) continue;
      at.set(pv.name, { disk: r.disk, start: r.start });
      pvs.push({
        uuid: pv.uuid,
        disk: r.disk,
        partition: r.partition,
        firstExtent: r.start + pv.peStart,
        extents: pv.peCount,
      });
    }
    const group: InspectedVolumeGroup = {
      name: vg.name,
      uuid: vg.uuid,
      extentSize: vg.extentSize,
      pvs,
      volumes: [],
      free: [],
    };
    const problems: string[] = [];
    for (const lv of vg.lvs) {
      const why = unsupportedReason(vg, lv);
      if (why) problems.push(why);
    }
    const missing = vg.pvs.filter((p) => !at.has(p.name));
    const onMissing = vg.lvs.filter((lv) =>
      lv.segments.some((s) => s.stripes.some((st) => missing.some((m) => m.name === st.pv))),
    );
    for (const lv of onMissing)
      problems.push(`${vg.name}/${lv.name} lies on a physical volume that is not among the exported disks`);
    if (problems.length > 0) {
      if (!opts.asIs)
        throw new P2vError('INSPECTION', `LVM volume group ${vg.name} cannot be converted: ${problems.join('; ')}`, {
          hint:
            missing.length && onMissing.length
              ? 'export every disk of the volume group (a --disk for each), or copy the LVM untouched with --lvm-as-is (no inspection, fixups or trim inside it)'
              : 'copy the volume group untouched with --lvm-as-is (no inspection, fixups or trim inside it), or remove those LVs on the source first',
        });
      group.asIs = problems.join('; ');
      opts.warn(`LVM volume group ${vg.name} is copied untouched (--lvm-as-is): ${group.asIs}`);
      out.push(group);
      continue;
    }
    for (const lv of vg.lvs) {
      // Hidden LVs (no VISIBLE flag) have no /dev node of their own in the guest; their extents still count as used.
      if (!lv.status.includes('VISIBLE')) continue;
      const ranges = lvRanges(vg, lv, at);
      group.volumes.push({
        vg: vg.name,
        name: lv.name,
        id: `${vg.name}/${lv.name}`,
        size: ranges.reduce((n, x) => n + x.size, 0),
        ranges,
      });
    }
    group.free = missing.length ? [] : freeRanges(vg, at);
    out.push(group);
  }
  return out;
}

/** The LV a device spec of the guest names, or null. */
export function findVolume(vgs: InspectedVolumeGroup[] | undefined, spec: string): InspectedVolume | null {
  const all = (vgs ?? []).flatMap((g) => g.volumes);
  const id = /^(UUID|LABEL)=(.+)$/.exec(spec) ?? /^\/dev\/disk\/by-(uuid|label)\/(.+)$/.exec(spec);
  if (id) {
    const v = id[2]!.replace(/^"(.*)"$/, '$1');
    return (
      all.find((x) =>
        id[1]!.toUpperCase() === 'UUID' ? x.fsUuid?.toLowerCase() === v.toLowerCase() : x.fsLabel === v,
      ) ?? null
    );
  }
  return all.find((x) => spec === mapperName(x.vg, x.name) || spec === `/dev/${x.vg}/${x.name}`) ?? null;
}
