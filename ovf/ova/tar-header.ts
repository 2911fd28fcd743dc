/**
 * USTAR header codec (POSIX.1-1988 "ustar\000" with GNU base-256 sizes).
 *
 *   encodeTarHeader({ name, size, mtime })  → 512-byte Buffer for a regular file
 *   tarPadding(size)                        → bytes of zero padding after `size` data bytes
 *   TAR_BLOCK, TAR_END                      → block size and the end-of-archive marker
 *
 * The writer needs its own encoder because in 'file' mode it writes a header
 * before it knows the member's size and rewrites it in place afterwards; the
 * same encoder serves 'stream' mode so both modes produce identical headers.
 * Sizes of 8 GiB and more do not fit 11 octal digits: they are written in the
 * base-256 form (first byte 0x80) that GNU tar, bsdtar, Python's tarfile and
 * tar-stream all read, so a disk of any size stays ONE member.
 */
import { P2vError } from '../../lib/errors.js';

export const TAR_BLOCK = 512;
/** Two zero blocks end a tar archive. */
export const TAR_END = Buffer.alloc(2 * TAR_BLOCK);

export interface TarFileHeader {
  /** Member name, ASCII, at most 100 bytes (or splittable at a "/" into a 155-byte prefix). */
  name: string;
  size: number;
  mtime?: Date;
  /** Permission bits; default 0644. */
  mode?: number;
}

const MAX_OCTAL_SIZE = 8 ** 11 - 1;

export function tarPadding(size: number): number {
  const r = size % TAR_BLOCK;
  return r === 0 ? 0 : TAR_BLOCK - r;
}

export function encodeTarHeader(h: TarFileHeader): Buffer {
  if (!Number.isSafeInteger(h.size) || h.size < 0) throw new RangeError(`bad tar member size ${h.size}`);
  if (!/^[\x20-\x7e]+$/.test(h.name)) {
    throw new P2vError(
      'BAD_OVA',
      `cannot store ${JSON.stringify(h.name)} in an OVA: member names must be printable ASCII`,
    );
  }
  let name = h.name;
  let prefix = '';
  if (name.length > 100) {
    const cut = name.lastIndexOf('/', 155);
    if (cut <= 0 || name.length - cut - 1 > 100) {
      throw new P2vError('BAD_OVA', `cannot store ${h.name} in an OVA: the name is longer than 100 bytes`);
    }
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  const b = Buffer.alloc(TAR_BLOCK);
  b.write(name, 0, 100, 'ascii');
  octal(b, 100, 8, h.mode ?? 0o644);
  octal(b, 108, 8, 0); // uid
  octal(b, 116, 8, 0); // gid
  if (h.size <= MAX_OCTAL_SIZE) {
    octal(b, 124, 12, h.size);
  } else {
    b[124] = 0x80;
    let n = h.size;
    for (let i = 135; i > 124; i--) {
      b[i] = n % 256;
      n = Math.floor(n / 256);
    }
  }
  octal(b, 136, 12, Math.floor((h.mtime ?? new Date()).getTime() / 1000));
  b[156] = 0x30; // '0': regular file
  b.write('ustar\u000000', 257, 8, 'ascii');
  b.write('root', 265, 32, 'ascii');
  b.write('root', 297, 32, 'ascii');
  octal(b, 329, 8, 0);
  octal(b, 337, 8, 0);
  if (prefix) b.write(prefix, 345, 155, 'ascii');
  // The checksum is computed with its own field read as eight spaces.
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += b[i]!;
  b.write(sum.toString(8).padStart(6, '0') + '\u0000 ', 148, 8, 'ascii');
  return b;
}

/** `value` as zero-padded octal filling `len - 1` bytes, NUL-terminated. */
function octal(b: Buffer, off: number, len: number, value: number): void {
  b.write(value.toString(8).padStart(len - 1, '0') + '\u0000', off, len, 'ascii');
}
