/**
 * streamOptimized markers. Every item after the descriptor starts on a sector
 * boundary with a 12-byte prefix: uint64 `val`, uint32 `size`.
 *  - size > 0: a grain marker; val is the grain's first LBA (in sectors) and
 *    `size` bytes of zlib data follow at once, padded to the next sector.
 *  - size = 0: a metadata marker filling one sector; uint32 `type` at byte 12
 *    and `val` = how many sectors of metadata follow it.
 * An all-zero sector is the end-of-stream marker.
 */
import { SECTOR_SIZE } from '../types.js';

export const MARKER_EOS = 0;
export const MARKER_GT = 1;
export const MARKER_GD = 2;
export const MARKER_FOOTER = 3;
/** Bytes before a grain's compressed data. */
export const GRAIN_MARKER_PREFIX = 12;

export type Marker =
  | { kind: 'grain'; lba: bigint; size: number }
  | { kind: 'eos' }
  | { kind: 'gt' | 'gd' | 'footer'; sectors: bigint }
  | { kind: 'unknown'; type: number; sectors: bigint };

const METADATA_KIND = { [MARKER_GT]: 'gt', [MARKER_GD]: 'gd', [MARKER_FOOTER]: 'footer' } as const;

/** Decode a marker: its 12-byte prefix, plus the 4-byte type when size is 0. */
export function decodeMarker(b: Buffer): Marker {
  const val = b.readBigUInt64LE(0);
  const size = b.readUInt32LE(8);
  if (size > 0) return { kind: 'grain', lba: val, size };
  const type = b.readUInt32LE(12);
  if (type === MARKER_EOS) return { kind: 'eos' };
  const kind = METADATA_KIND[type as keyof typeof METADATA_KIND];
  return kind ? { kind, sectors: val } : { kind: 'unknown', type, sectors: val };
}

export function roundUpToSector(n: number): number {
  return Math.ceil(n / SECTOR_SIZE) * SECTOR_SIZE;
}

/** One grain as stored: marker prefix + zlib data, zero-padded to a sector multiple. */
export function encodeGrain(lba: bigint, compressed: Buffer): Buffer {
  const b = Buffer.alloc(roundUpToSector(GRAIN_MARKER_PREFIX + compressed.length));
  b.writeBigUInt64LE(lba, 0);
  b.writeUInt32LE(compressed.length, 8);
  compressed.copy(b, GRAIN_MARKER_PREFIX);
  return b;
}

/** A metadata marker sector announcing `sectors` sectors of metadata of `type`. */
export function encodeMetadataMarker(
  type: typeof MARKER_GT | typeof MARKER_GD | typeof MARKER_FOOTER | typeof MARKER_EOS,
  sectors: number,
): Buffer {
  const b = Buffer.alloc(SECTOR_SIZE);
  b.writeBigUInt64LE(BigInt(sectors), 0);
  b.writeUInt32LE(type, 12);
  return b;
}

/** A table of uint32 sector offsets (grain table or grain directory), padded to whole sectors. */
export function encodeTable(entries: Uint32Array): Buffer {
  const b = Buffer.alloc(roundUpToSector(entries.length * 4));
  for (let i = 0; i < entries.length; i++) b.writeUInt32LE(entries[i]!, i * 4);
  return b;
}
