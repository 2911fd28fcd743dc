/**
 * The VMDK version-3 sparse extent header (one 512-byte sector, little
 * endian): pure encode/decode plus the constants of the streamOptimized
 * layout. A streamOptimized file carries the header twice: first with
 * gdOffset = GD_AT_END (the writer cannot know where the grain directory will
 * land), then again as the footer with the real offset.
 */
import { GRAIN_SIZE, SECTOR_SIZE } from '../types.js';
import { P2vError } from '../../lib/errors.js';

/** "KDMV" read as a little-endian uint32. */
export const SPARSE_MAGIC = 0x564d444b;
export const SPARSE_VERSION = 3;
/** Header gdOffset meaning "look for the footer at the end of the stream". */
export const GD_AT_END = 0xffffffffffffffffn;

export const FLAG_NEWLINE_TEST = 1 << 0;
export const FLAG_REDUNDANT_GT = 1 << 1;
export const FLAG_ZERO_GRAIN_GTE = 1 << 2;
export const FLAG_COMPRESSED = 1 << 16;
export const FLAG_MARKERS = 1 << 17;
/** Flags of a streamOptimized extent as VMware writes them. */
export const STREAM_FLAGS = FLAG_NEWLINE_TEST | FLAG_COMPRESSED | FLAG_MARKERS;

export const COMPRESSION_DEFLATE = 1;
/** Grain-table entries per grain table (so one GT covers 512 grains = 32 MiB). */
export const GTES_PER_GT = 512;
/** Grain size in sectors we write (64 KiB, what every VMDK tool uses). */
export const DEFAULT_GRAIN_SECTORS = GRAIN_SIZE / SECTOR_SIZE;

export interface SparseHeader {
  version: number;
  flags: number;
  /** Virtual disk size in sectors. */
  capacity: bigint;
  /** Grain size in sectors. */
  grainSize: bigint;
  descriptorOffset: bigint;
  descriptorSize: bigint;
  numGTEsPerGT: number;
  rgdOffset: bigint;
  gdOffset: bigint;
  /** Sectors before the first grain (header, descriptor and any up-front metadata). */
  overHead: bigint;
  uncleanShutdown: boolean;
  /** The four newline-test bytes ('\n', ' ', '\r', '\n' when intact). */
  newlineBytes: [number, number, number, number];
  compressAlgorithm: number;
}

const NEWLINE_BYTES: [number, number, number, number] = [0x0a, 0x20, 0x0d, 0x0a];

/** A streamOptimized header for a disk of `capacitySectors`. */
export function streamHeader(capacitySectors: bigint, descriptorSectors: bigint, gdOffset: bigint): SparseHeader {
  return {
    version: SPARSE_VERSION,
    flags: STREAM_FLAGS,
    capacity: capacitySectors,
    grainSize: BigInt(DEFAULT_GRAIN_SECTORS),
    descriptorOffset: 1n,
    descriptorSize: descriptorSectors,
    numGTEsPerGT: GTES_PER_GT,
    rgdOffset: 0n,
    gdOffset,
    overHead: 1n + descriptorSectors,
    uncleanShutdown: false,
    newlineBytes: [...NEWLINE_BYTES],
    compressAlgorithm: COMPRESSION_DEFLATE,
  };
}

export function encodeSparseHeader(h: SparseHeader): Buffer {
  const b = Buffer.alloc(SECTOR_SIZE);
  b.writeUInt32LE(SPARSE_MAGIC, 0);
  b.writeUInt32LE(h.version, 4);
  b.writeUInt32LE(h.flags >>> 0, 8);
  b.writeBigUInt64LE(h.capacity, 12);
  b.writeBigUInt64LE(h.grainSize, 20);
  b.writeBigUInt64LE(h.descriptorOffset, 28);
  b.writeBigUInt64LE(h.descriptorSize, 36);
  b.writeUInt32LE(h.numGTEsPerGT, 44);
  b.writeBigUInt64LE(h.rgdOffset, 48);
  b.writeBigUInt64LE(h.gdOffset, 56);
  b.writeBigUInt64LE(h.overHead, 64);
  b.writeUInt8(h.uncleanShutdown ? 1 : 0, 72);
  for (let i = 0; i < 4; i++) b.writeUInt8(h.newlineBytes[i]!, 73 + i);
  b.writeUInt16LE(h.compressAlgorithm, 77);
  return b;
}

/** Decode without judging (the reader validates); throws only on a wrong magic. */
export function decodeSparseHeader(b: Buffer, where: string): SparseHeader {
  const magic = b.readUInt32LE(0);
  if (magic !== SPARSE_MAGIC) {
    throw new P2vError(
      'BAD_VMDK',
      `${where}: not a VMDK sparse extent (magic 0x${magic.toString(16).padStart(8, '0')}, expected "KDMV")`,
      {
        hint: 'the disk file is not a VMDK (or is a descriptor-only VMDK); check the OVF disk format or convert it with qemu-img convert -O vmdk -o subformat=streamOptimized',
      },
    );
  }
  return {
    version: b.readUInt32LE(4),
    flags: b.readUInt32LE(8),
    capacity: b.readBigUInt64LE(12),
    grainSize: b.readBigUInt64LE(20),
    descriptorOffset: b.readBigUInt64LE(28),
    descriptorSize: b.readBigUInt64LE(36),
    numGTEsPerGT: b.readUInt32LE(44),
    rgdOffset: b.readBigUInt64LE(48),
    gdOffset: b.readBigUInt64LE(56),
    overHead: b.readBigUInt64LE(64),
    uncleanShutdown: b.readUInt8(72) !== 0,
    newlineBytes: [b.readUInt8(73), b.readUInt8(74), b.readUInt8(75), b.readUInt8(76)],
    compressAlgorithm: b.readUInt16LE(77),
  };
}

/** True when the newline-test bytes survived the transfer (no text-mode FTP/CRLF mangling). */
export function newlineTestPasses(h: SparseHeader): boolean {
  return h.newlineBytes.every((v, i) => v === NEWLINE_BYTES[i]);
}
