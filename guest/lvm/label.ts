/**
 * The binary part of an LVM2 physical volume, read from bytes the caller
 * gives (no I/O here): the label in one of sectors 0–3, the PV header after
 * it, and each metadata area's header with the location of the newest text
 * metadata in its circular buffer. Learned from lvm2's on-disk format
 * (lib/label, lib/format_text); all integers are little-endian.
 *
 *   LABEL sector:  "LABELONE" · sector u64 · crc u32 · offset u32 · "LVM2 001"
 *   PV header:     uuid[32] · device size u64 · data areas {offset,size}… 0,0 · metadata areas {offset,size}… 0,0
 *   MDA header:    crc u32 · " LVM2 x[5A%r0N*>" · version u32 · start u64 · size u64 · raw locations {offset,size,crc,flags}… 0
 *
 *   findLabel(first2048): PvLabel | null
 *   parseMdaHeader(bytes512): MdaHeader
 *   metadataRanges(mda): { offset, size }[]   — the byte range(s) of the newest text, wrapped as the buffer wraps
 */
import { P2vError } from '../../lib/errors.js';

export const SECTOR = 512;
/** The label sits in one of the first four sectors. */
export const LABEL_SCAN_BYTES = 4 * SECTOR;
/** Size of a metadata area header; the circular text buffer starts after it. */
export const MDA_HEADER_SIZE = 512;
const MDA_MAGIC = ' LVM2 x[5A%r0N*>';

export interface DiskLocation {
  /** Byte offset from the start of the PV. */
  offset: number;
  /** Bytes; 0 for a data area means "to the end of the device". */
  size: number;
}

export interface PvLabel {
  /** The PV's uuid as 32 characters, without the dashes the text metadata writes. */
  uuid: string;
  deviceSize: number;
  dataAreas: DiskLocation[];
  metadataAreas: DiskLocation[];
}

export interface MdaHeader {
  /** Absolute byte offset of this area from the start of the PV (as recorded). */
  start: number;
  size: number;
  /** Where the newest metadata text is, relative to `start`; absent when the area holds none. */
  text?: { offset: number; size: number };
}

function bad(what: string): P2vError {
  return new P2vError('INSPECTION', `LVM physical volume: ${what}`, {
    hint: 'check the volume group on the source with `pvck` and `vgs`; use --lvm-as-is to copy it without inspection',
  });
}

const u64 = (b: Buffer, at: number) => Number(b.readBigUInt64LE(at));

/** Read a zero-terminated list of {offset u64, size u64}. */
function locations(b: Buffer, at: number): { list: DiskLocation[]; next: number } {
  const list: DiskLocation[] = [];
  for (;;) {
    if (at + 16 > b.length) throw bad('the PV header runs past its sector');
    const offset = u64(b, at);
    const size = u64(b, at + 8);
    at += 16;
    if (offset === 0) return { list, next: at };
    list.push({ offset, size });
  }
}

/** The label and PV header in the first 2048 bytes of a device, or null when it carries no LVM2 label. */
export function findLabel(head: Buffer): PvLabel | null {
  for (let s = 0; s < 4 && (s + 1) * SECTOR <= head.length; s++) {
    const sec = head.subarray(s * SECTOR, (s + 1) * SECTOR);
    if (sec.toString('latin1', 0, 8) !== 'LABELONE') continue;
    if (sec.toString('latin1', 24, 32) !== 'LVM2 001')
      throw bad(`unknown label type ${JSON.stringify(sec.toString('latin1', 24, 32))}`);
    const pvAt = sec.readUInt32LE(20);
    if (pvAt < 32 || pvAt + 40 > SECTOR) throw bad(`PV header offset ${pvAt} is outside its sector`);
    const uuid = sec.toString('latin1', pvAt, pvAt + 32);
    const deviceSize = u64(sec, pvAt + 32);
    const data = locations(sec, pvAt + 40);
    const meta = locations(sec, data.next);
    return { uuid, deviceSize, dataAreas: data.list, metadataAreas: meta.list };
  }
  return null;
}

/** The header of one metadata area (its first 512 bytes). */
export function parseMdaHeader(b: Buffer): MdaHeader {
  if (b.length < MDA_HEADER_SIZE) throw bad('short metadata area header');
  if (b.toString('latin1', 4, 20) !== MDA_MAGIC) throw bad('metadata area header has a wrong magic');
  const start = u64(b, 24);
  const size = u64(b, 32);
  const offset = u64(b, 40);
  const textSize = u64(b, 48);
  return { start, size, ...(offset !== 0 && textSize !== 0 ? { text: { offset, size: textSize } } : {}) };
}

/**
 * The newest metadata text as byte ranges from the start of the PV: one range,
 * or two when it wraps past the end of the circular buffer (the rest follows
 * the header at the buffer's start).
 */
export function metadataRanges(areaOffset: number, mda: MdaHeader): DiskLocation[] {
  if (!mda.text) return [];
  const { offset, size } = mda.text;
  if (offset < MDA_HEADER_SIZE || offset >= mda.size) throw bad('metadata text lies outside its area');
  const first = Math.min(size, mda.size - offset);
  const out = [{ offset: areaOffset + offset, size: first }];
  if (first < size) {
    if (size - first > mda.size - MDA_HEADER_SIZE) throw bad('metadata text is larger than its area');
    out.push({ offset: areaOffset + MDA_HEADER_SIZE, size: size - first });
  }
  return out;
}
