/**
 * The "newc" cpio codec (magic 070701, or 070702 with checksums), the format
 * the kernel unpacks an initramfs from. Pure Buffer work, both ways:
 *
 *   newcHeader(fields): Buffer — encode one member's header, name and padding
 *     (ramboot/cpio-writer.ts builds whole archives from it);
 *   CpioScanner — decode incrementally (guest/initramfs.ts lists a guest's
 *     initramfs with it); listCpio(buffer) for a whole archive in memory.
 *
 * Malformed input is a CpioError, a P2vError('IO') whose message says where.
 *
 * CpioScanner is fed
 * the bytes in chunks of any size and reports each member's name and size;
 * member data is skipped, never held, so a 100 MiB initramfs costs a few bytes
 * of memory. Several archives may follow each other (the kernel accepts that):
 * NUL padding between them is skipped.
 */

import { P2vError } from './errors.js';

export const NEWC_HEADER_SIZE = 110;
/** Names longer than this are refused: the kernel itself limits them to PATH_MAX. */
const MAX_NAME = 4096;

export interface CpioEntry {
  name: string;
  mode: number;
  size: number;
}

/** A malformed or truncated archive. */
export class CpioError extends P2vError {
  constructor(message: string) {
    super('IO', message, { hint: 'the cpio archive is damaged: rebuild it where it was made' });
    this.name = 'CpioError';
  }
}

export const pad4 = (n: number): number => (4 - (n % 4)) % 4;

export interface NewcFields {
  ino: number;
  mode: number;
  uid?: number;
  gid?: number;
  nlink?: number;
  mtime?: number;
  fileSize: number;
  devMajor?: number;
  devMinor?: number;
  rdevMajor?: number;
  rdevMinor?: number;
  name: string;
}

const hex8 = (n: number): string => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
};

/** Header + NUL-terminated name + padding to 4 bytes: everything before the data. */
export function newcHeader(f: NewcFields): Buffer {
  const name = Buffer.from(f.name + '\0', 'utf8');
  const fields = [
    f.ino,
    f.mode,
    f.uid ?? 0,
    f.gid ?? 0,
    f.nlink ?? 1,
    f.mtime ?? 0,
    f.fileSize,
    f.devMajor ?? 0,
    f.devMinor ?? 0,
    f.rdevMajor ?? 0,
    f.rdevMinor ?? 0,
    name.length,
    0, // check: always 0 in 070701
  ];
  const head = Buffer.from('070701' + fields.map(hex8).join(''), 'ascii');
  return Buffer.concat([head, name, Buffer.alloc(pad4(head.length + name.length))]);
}

type State =
  | { kind: 'between' }
  | { kind: 'header'; have: Buffer[]; len: number }
  | { kind: 'name'; entry: { mode: number; size: number }; need: number; nameSize: number; have: Buffer[]; len: number }
  | { kind: 'skip'; left: number };

export class CpioScanner {
  private state: State = { kind: 'between' };
  /** Bytes consumed so far. */
  offset = 0;
  /** Archives seen complete (a TRAILER!!! member ends one). */
  archives = 0;
  /** Set when non-cpio data follows an archive (see push). */
  stopped = false;

  constructor(private readonly onEntry: (e: CpioEntry) => void) {}

  /**
   * Feed bytes; returns how many were consumed. Between archives, a byte that
   * cannot start a cpio header (a compressed stream follows, as in Debian's
   * microcode + main initramfs) stops the scanner: `stopped` is set and the
   * rest of the chunk is left to the caller.
   */
  push(chunk: Buffer): number {
    if (this.stopped) return 0;
    let i = 0;
    while (i < chunk.length) {
      const s = this.state;
      switch (s.kind) {
        case 'between': {
          while (i < chunk.length && chunk[i] === 0) i++;
          if (i < chunk.length) {
            if (chunk[i] !== 0x30 /* '0' of 070701 */) {
              this.stopped = true;
              this.offset += i;
              return i;
            }
            this.state = { kind: 'header', have: [], len: 0 };
          }
          break;
        }
        case 'skip': {
          const n = Math.min(s.left, chunk.length - i);
          s.left -= n;
          i += n;
          if (s.left === 0) this.state = { kind: 'header', have: [], len: 0 };
          break;
        }
        case 'header': {
          const n = Math.min(NEWC_HEADER_SIZE - s.len, chunk.length - i);
          s.have.push(Buffer.from(chunk.subarray(i, i + n)));
          s.len += n;
          i += n;
          if (s.len === NEWC_HEADER_SIZE) this.state = this.header(Buffer.concat(s.have));
          break;
        }
        case 'name': {
          const n = Math.min(s.need - s.len, chunk.length - i);
          s.have.push(Buffer.from(chunk.subarray(i, i + n)));
          s.len += n;
          i += n;
          if (s.len === s.need) this.state = this.named(s.entry, Buffer.concat(s.have).subarray(0, s.nameSize - 1));
          break;
        }
      }
    }
    this.offset += chunk.length;
    return chunk.length;
  }

  /** Call at end of input: throws when it stopped inside a member. */
  end(): void {
    if (this.state.kind === 'between' || this.stopped) return;
    if (this.state.kind === 'header' && this.state.len === 0) return;
    throw new CpioError(`cpio archive truncated at byte ${this.offset}`);
  }

  private header(h: Buffer): State {
    const magic = h.toString('latin1', 0, 6);
    if (magic !== '070701' && magic !== '070702') {
      throw new CpioError(`not a newc cpio header at byte ${this.offset} (magic ${JSON.stringify(magic)})`);
    }
    const field = (k: number) => {
      const t = h.toString('latin1', 6 + k * 8, 14 + k * 8);
      if (!/^[0-9a-fA-F]{8}$/.test(t)) throw new CpioError(`bad cpio header field at byte ${this.offset}`);
      return parseInt(t, 16);
    };
    const mode = field(1);
    const size = field(6);
    const nameSize = field(11);
    if (nameSize < 1 || nameSize > MAX_NAME) throw new CpioError(`bad cpio name size ${nameSize}`);
    return {
      kind: 'name',
      entry: { mode, size },
      need: nameSize + pad4(NEWC_HEADER_SIZE + nameSize),
      nameSize,
      have: [],
      len: 0,
    };
  }

  private named(entry: { mode: number; size: number }, rawName: Buffer): State {
    const name = rawName.toString('utf8');
    if (name === 'TRAILER!!!') {
      this.archives++;
      return { kind: 'between' };
    }
    this.onEntry({ name, ...entry });
    const left = entry.size + pad4(entry.size);
    return left === 0 ? { kind: 'header', have: [], len: 0 } : { kind: 'skip', left };
  }
}

/** All entries of a complete newc archive in memory (tests, small early archives). */
export function listCpio(data: Buffer): CpioEntry[] {
  const out: CpioEntry[] = [];
  const s = new CpioScanner((e) => out.push(e));
  s.push(data);
  s.end();
  return out;
}
