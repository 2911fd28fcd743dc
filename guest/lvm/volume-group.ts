/**
 * A volume group as its text metadata describes it, and where each logical
 * volume's bytes are on the exported disks. Pure: config in, ranges out.
 *
 *   parseVolumeGroup(config): LvmVolumeGroup
 *   unsupportedReason(vg, lv): string | null   — snapshots, thin, RAID, cache, striping…
 *   lvRanges(vg, lv, pvAt): DiskRange[]        — the LV's bytes in LV order
 *   freeRanges(vg, pvAt): DiskRange[]          — extents no LV uses
 *   mapperName(vg, lv): string                 — "/dev/mapper/vg-lv" with '-' doubled
 */
import { P2vError } from '../../lib/errors.js';
import type { DiskRange } from '../types.js';
import { isSection, type ConfigSection, type ConfigValue } from './config.js';

export const SECTOR = 512;

export interface LvmSegment {
  startExtent: number;
  extentCount: number;
  /** "striped" (linear is striped with one stripe), "snapshot", "thin", "raid1", … */
  type: string;
  /** (PV name, first extent on it) per stripe; empty for types that name other LVs. */
  stripes: { pv: string; extent: number }[];
  /** A snapshot segment's origin and COW store LVs. */
  origin?: string;
  cowStore?: string;
}

export interface LvmLogicalVolume {
  name: string;
  status: string[];
  segments: LvmSegment[];
}

export interface LvmPhysicalVolume {
  /** The metadata's own name for it ("pv0"). */
  name: string;
  /** 32 characters, dashes removed (as the PV label writes it). */
  uuid: string;
  /** Byte offset of extent 0 from the start of the PV. */
  peStart: number;
  peCount: number;
}

export interface LvmVolumeGroup {
  name: string;
  uuid: string;
  seqno: number;
  /** Bytes. */
  extentSize: number;
  pvs: LvmPhysicalVolume[];
  lvs: LvmLogicalVolume[];
}

function malformed(what: string): P2vError {
  return new P2vError('INSPECTION', `LVM metadata: ${what}`, {
    hint: 'check the volume group on the source with `vgck`; use --lvm-as-is to copy it without inspection',
  });
}

const num = (s: ConfigSection, key: string, where: string): number => {
  const v = s[key];
  if (typeof v !== 'number') throw malformed(`${where} has no number ${key}`);
  return v;
};
const strings = (v: ConfigValue | ConfigSection | undefined): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
const sections = (s: ConfigSection | undefined): [string, ConfigSection][] =>
  s ? Object.entries(s).filter((e): e is [string, ConfigSection] => isSection(e[1])) : [];

/** The one VG in a metadata text (the only top-level section). */
export function parseVolumeGroup(config: ConfigSection): LvmVolumeGroup {
  const top = sections(config);
  if (top.length !== 1) throw malformed(`expected one volume group, found ${top.length}`);
  const [name, vg] = top[0]!;
  const extentSize = num(vg, 'extent_size', `volume group ${name}`) * SECTOR;
  const pvSection = vg.physical_volumes;
  const pvs = sections(isSection(pvSection) ? pvSection : undefined).map(([pvName, pv]): LvmPhysicalVolume => ({
    name: pvName,
    uuid: String(pv.id ?? '').replace(/-/g, ''),
    peStart: num(pv, 'pe_start', `PV ${pvName}`) * SECTOR,
    peCount: num(pv, 'pe_count', `PV ${pvName}`),
  }));
  const lvSection = vg.logical_volumes;
  const lvs = sections(isSection(lvSection) ? lvSection : undefined).map(([lvName, lv]): LvmLogicalVolume => {
    const segments = sections(lv)
      .filter(([k]) => /^segment\d+$/.test(k))
      .map(([k, seg]): LvmSegment => {
        const list = Array.isArray(seg.stripes) ? seg.stripes : [];
        const stripes: LvmSegment['stripes'] = [];
        for (let i = 0; i + 1 < list.length; i += 2) {
          const pv = list[i];
          const extent = list[i + 1];
          if (typeof pv !== 'string' || typeof extent !== 'number') throw malformed(`${lvName} ${k} has bad stripes`);
          stripes.push({ pv, extent });
        }
        return {
          startExtent: num(seg, 'start_extent', `${lvName} ${k}`),
          extentCount: num(seg, 'extent_count', `${lvName} ${k}`),
          type: typeof seg.type === 'string' ? seg.type : 'unknown',
          stripes,
          ...(typeof seg.origin === 'string' ? { origin: seg.origin } : {}),
          ...(typeof seg.cow_store === 'string' ? { cowStore: seg.cow_store } : {}),
        };
      })
      .sort((a, b) => a.startExtent - b.startExtent);
    return { name: lvName, status: strings(lv.status), segments };
  });
  return {
    name,
    uuid: String(vg.id ?? ''),
    seqno: typeof vg.seqno === 'number' ? vg.seqno : 0,
    extentSize,
    pvs,
    lvs,
  };
}

const KIND: [RegExp, string][] = [
  [/^snapshot$/, 'a snapshot'],
  [/^thin(-pool)?$/, 'a thin volume'],
  [/^(raid\d*|raid10|mirror)(_.*)?$/, 'a RAID or mirror volume'],
  [/^(cache|cache-pool|writecache)$/, 'a cache volume'],
  [/^vdo(-pool)?$/, 'a VDO volume'],
  [/^integrity$/, 'an integrity volume'],
];

/** Why an LV cannot be exposed as a plain device (null: it is linear, in one or more segments). */
export function unsupportedReason(vg: LvmVolumeGroup, lv: LvmLogicalVolume): string | null {
  const id = `${vg.name}/${lv.name}`;
  for (const seg of lv.segments) {
    for (const [re, what] of KIND) if (re.test(seg.type)) return `${id} is ${what} (segment type ${seg.type})`;
    if (seg.type !== 'striped') return `${id} has a segment of type ${seg.type}`;
    if (seg.stripes.length !== 1) return `${id} is striped over ${seg.stripes.length} physical volumes`;
  }
  // The origin of a snapshot and its COW store: writing either without device-mapper would corrupt the snapshot.
  const snaps = vg.lvs.flatMap((o) => o.segments.filter((s) => s.type === 'snapshot'));
  if (snaps.some((s) => s.origin === lv.name)) return `${id} is the origin of a snapshot`;
  if (snaps.some((s) => s.cowStore === lv.name)) return `${id} is the store of a snapshot`;
  if (lv.segments.length === 0) return `${id} has no segments`;
  return null;
}

/** Where each PV (by metadata name) is on the exported disks: the disk and the byte offset of the PV's start. */
export type PvPlacement = Map<string, { disk: number; start: number }>;

/** The LV's bytes on the exported disks, in LV order, adjacent ranges merged. Only for supported LVs. */
export function lvRanges(vg: LvmVolumeGroup, lv: LvmLogicalVolume, at: PvPlacement): DiskRange[] {
  const out: DiskRange[] = [];
  for (const seg of lv.segments) {
    const stripe = seg.stripes[0]!;
    const pv = vg.pvs.find((p) => p.name === stripe.pv);
    const where = at.get(stripe.pv);
    if (!pv || !where)
      throw new P2vError(
        'INSPECTION',
        `LV ${vg.name}/${lv.name} lies on a physical volume that is not among the exported disks (${stripe.pv}${pv ? ` ${pv.uuid}` : ''})`,
        {
          hint: 'export every disk of the volume group (--disk for each), or use --lvm-as-is to copy the LVM disks untouched',
        },
      );
    if (stripe.extent + seg.extentCount > pv.peCount)
      throw malformed(`${vg.name}/${lv.name} runs past the end of ${stripe.pv}`);
    const r = {
      disk: where.disk,
      offset: where.start + pv.peStart + stripe.extent * vg.extentSize,
      size: seg.extentCount * vg.extentSize,
    };
    const last = out[out.length - 1];
    if (last && last.disk === r.disk && last.offset + last.size === r.offset) last.size += r.size;
    else out.push(r);
  }
  return out;
}

/** Extents of the exported PVs that no LV uses, as byte ranges (adjacent ones merged). */
export function freeRanges(vg: LvmVolumeGroup, at: PvPlacement): DiskRange[] {
  const out: DiskRange[] = [];
  for (const pv of vg.pvs) {
    const where = at.get(pv.name);
    if (!where) continue;
    const used = new Uint8Array(pv.peCount);
    for (const lv of vg.lvs)
      for (const seg of lv.segments)
        for (const s of seg.stripes) {
          if (s.pv !== pv.name) continue;
          // A striped segment spreads extent_count over its stripes; counting all of it is safe (never frees used space).
          for (let e = s.extent; e < Math.min(pv.peCount, s.extent + seg.extentCount); e++) used[e] = 1;
        }
    let e = 0;
    while (e < pv.peCount) {
      if (used[e]) {
        e++;
        continue;
      }
      const first = e;
      while (e < pv.peCount && !used[e]) e++;
      out.push({
        disk: where.disk,
        offset: where.start + pv.peStart + first * vg.extentSize,
        size: (e - first) * vg.extentSize,
      });
    }
  }
  return out;
}

/** The device-mapper name the guest's udev gives an LV: VG and LV with '-' doubled, joined by '-'. */
export function mapperName(vg: string, lv: string): string {
  return `/dev/mapper/${vg.replace(/-/g, '--')}-${lv.replace(/-/g, '--')}`;
}
