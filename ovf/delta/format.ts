/**
 * The block-digest vocabulary shared by the block map and the delta stream
 * (docs/design-delta.md). A disk is cut into blocks of `blockSize` bytes (the
 * last one may be shorter); each block has one entry: ZERO when every byte is
 * zero, else its SHA-256. A disk's digest is the SHA-256 of a short preamble
 * naming the block size and capacity followed by every entry's bytes: two
 * disks with the same digest hold the same bytes, so the digest serves as the
 * base's identity and as the whole-disk check of a delta's result.
 */
import * as crypto from 'node:crypto';
import { createHash, type Hash } from 'node:crypto';
import { P2vError } from '../../lib/errors.js';

/**
 * Default block size: one filesystem block (ext4, XFS), so a changed file
 * drags no unchanged neighbour along (64 KiB blocks sent 1.8× the changed
 * data of 2 % of 100 kB files rewritten in place: bench/README.md); the map
 * costs 1 byte per empty block and 33 per data block.
 */
export const DEFAULT_BLOCK_SIZE = 4096;
/** Accepted block sizes: powers of two from 4 KiB to 4 MiB. */
export const MIN_BLOCK_SIZE = 4096;
export const MAX_BLOCK_SIZE = 4 * 1024 * 1024;

/** Entry bytes: a ZERO block is one byte, a data block one byte plus its 32-byte SHA-256. */
export const ENTRY_ZERO = 0x00;
export const ENTRY_DATA = 0x01;
export const DIGEST_BYTES = 32;

const ZEROS = Buffer.alloc(MAX_BLOCK_SIZE);
const TAG_ZERO = Buffer.of(ENTRY_ZERO);
const TAG_DATA = Buffer.of(ENTRY_DATA);

/** One block's entry: null for an all-zero block, else its SHA-256. */
export type BlockEntry = Buffer | null;

export function checkBlockSize(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < MIN_BLOCK_SIZE || n > MAX_BLOCK_SIZE || (n & (n - 1)) !== 0)
    throw new P2vError('BAD_OVA', `${what}: block size ${n} is not a power of two between 4 KiB and 4 MiB`, {
      hint: 'the block map or delta is corrupt; fetch the map again (p2v-import --block-map NAME)',
    });
  return n;
}

export function blockCount(capacity: number, blockSize: number): number {
  return Math.ceil(capacity / blockSize);
}

/** Bytes of block `index` (the last block of a disk may be short). */
export function blockLength(index: number, capacity: number, blockSize: number): number {
  return Math.min(blockSize, capacity - index * blockSize);
}

export function encodeEntry(e: BlockEntry): Buffer {
  return e === null ? Buffer.of(ENTRY_ZERO) : Buffer.concat([Buffer.of(ENTRY_DATA), e]);
}

export function sameEntry(a: BlockEntry, b: BlockEntry): boolean {
  if (a === null || b === null) return a === b;
  return a.equals(b);
}

/** The running whole-disk digest over a disk's entries, in block order. */
export class DiskDigest {
  private readonly h: Hash = createHash('sha256');
  constructor(blockSize: number, capacity: number) {
    this.h.update(`p2v-disk-digest 1 ${blockSize} ${capacity}\n`);
  }
  add(e: BlockEntry): void {
    if (e === null) this.h.update(TAG_ZERO);
    else {
      this.h.update(TAG_DATA);
      this.h.update(e);
    }
  }
  /** `n` ZERO entries at once. */
  addZeros(n: number): void {
    for (let left = n; left > 0;) {
      const k = Math.min(left, ZEROS.length);
      this.h.update(ZEROS.subarray(0, k));
      left -= k;
    }
  }
  /** Entries already encoded (a map file's or a map's own bytes). */
  addBytes(b: Buffer): void {
    this.h.update(b);
  }
  hex(): string {
    return this.h.digest('hex');
  }
}

/**
 * SHA-256 of one block: node's one-shot `crypto.hash` where it exists (20.12
 * and later), a third cheaper per 4 KiB block than a Hash object.
 */
export const sha256: (data: Buffer) => Buffer =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('sha256', data, 'buffer')
    : (data) => createHash('sha256').update(data).digest();

/** The entry of a whole block's bytes. */
export function entryOf(block: Buffer): BlockEntry {
  if (isZero(block)) return null;
  return sha256(block);
}

export function zeros(n: number): Buffer {
  return ZEROS.subarray(0, n);
}

export function isZero(b: Buffer): boolean {
  return b.equals(ZEROS.subarray(0, b.length));
}

/** ovf:format of a delta disk: it names the base (machine name) and the base disk's digest. */
export const DELTA_FORMAT_PREFIX = 'urn:ganeti-p2v:delta:1:';

export interface DeltaFormat {
  /** The machine whose base the delta applies to. */
  base: string;
  blockSize: number;
  /** The base disk's digest (hex). */
  baseDigest: string;
}

export function deltaFormatUri(f: DeltaFormat): string {
  return `${DELTA_FORMAT_PREFIX}${f.base}:${f.blockSize}:${f.baseDigest}`;
}

/** The delta a disk's ovf:format names, or undefined when the disk is not a delta. */
export function parseDeltaFormatUri(uri: string | undefined): DeltaFormat | undefined {
  if (uri === undefined || !uri.startsWith(DELTA_FORMAT_PREFIX)) return undefined;
  const m = /^([a-z0-9][a-z0-9.-]{0,62}):(\d{1,8}):([0-9a-f]{64})$/.exec(uri.slice(DELTA_FORMAT_PREFIX.length));
  if (!m)
    throw new P2vError('BAD_OVF', `the delta disk format "${uri.slice(0, 120)}" is malformed`, {
      hint: 'the delta was damaged or not written by p2v-export; send a full export',
    });
  return { base: m[1]!, blockSize: checkBlockSize(Number(m[2]), 'delta format'), baseDigest: m[3]! };
}

/**
 * gnt:Tags value of a warm pass (p2v-export --warm): a copy of a running
 * machine, kept by the stager as the machine's base only, never written as
 * an output (it was neither fixed up nor consistent).
 */
export const WARM_PASS_TAG = 'p2v-warm-pass';

export function isWarmPass(m: { ganeti?: { tags?: string[] } }): boolean {
  return m.ganeti?.tags?.includes(WARM_PASS_TAG) ?? false;
}
