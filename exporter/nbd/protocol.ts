/**
 * NBD wire format (the NetworkBlockDevice project's proto.md): constants and
 * pure encoders/decoders for the handshake and transmission headers. All
 * integers are big-endian. Nothing here touches a socket.
 */
import { P2vError } from '../../lib/errors.js';

// Handshake.
export const NBDMAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT": newstyle
export const OLDSTYLE_MAGIC = 0x00420281861253n;
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;

export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;

export const OPT_EXPORT_NAME = 1;
export const OPT_ABORT = 2;
export const OPT_INFO = 6;
export const OPT_GO = 7;
export const OPT_STRUCTURED_REPLY = 8;
export const OPT_SET_META_CONTEXT = 10;

export const REP_ACK = 1;
export const REP_INFO = 3;
export const REP_META_CONTEXT = 4;
const REP_FLAG_ERROR = 0x80000000;
export const REP_ERR_UNSUP = REP_FLAG_ERROR + 1;

export const INFO_EXPORT = 0;
export const INFO_BLOCK_SIZE = 3;

// Transmission flags (per export).
export const TFLAG_HAS_FLAGS = 1 << 0;
export const TFLAG_READ_ONLY = 1 << 1;
export const TFLAG_SEND_FLUSH = 1 << 2;
export const TFLAG_SEND_TRIM = 1 << 5;

// Requests.
export const REQUEST_MAGIC = 0x25609513;
export const REQUEST_HEADER_SIZE = 28;
export const CMD_READ = 0;
export const CMD_WRITE = 1;
export const CMD_DISC = 2;
export const CMD_FLUSH = 3;
export const CMD_TRIM = 4;
export const CMD_BLOCK_STATUS = 7;

// Replies.
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const SIMPLE_REPLY_SIZE = 16;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;
export const STRUCTURED_REPLY_SIZE = 20;
export const REPLY_FLAG_DONE = 1 << 0;
export const CHUNK_NONE = 0;
export const CHUNK_OFFSET_DATA = 1;
export const CHUNK_OFFSET_HOLE = 2;
export const CHUNK_BLOCK_STATUS = 5;
const CHUNK_ERROR_BIT = 1 << 15;
export const CHUNK_ERROR = CHUNK_ERROR_BIT + 1;
export const CHUNK_ERROR_OFFSET = CHUNK_ERROR_BIT + 2;

// base:allocation status bits.
export const STATE_HOLE = 1 << 0;
export const STATE_ZERO = 1 << 1;

export const ALLOCATION_CONTEXT = 'base:allocation';

/** The protocol caps strings at 4096 bytes; option replies stay well under this. */
export const MAX_OPTION_REPLY = 64 * 1024;

export function isChunkError(type: number): boolean {
  return (type & CHUNK_ERROR_BIT) !== 0;
}

export function isOptionError(type: number): boolean {
  return (type & REP_FLAG_ERROR) !== 0;
}

/** Name the command in messages ("read", "block status"). */
export function commandName(cmd: number): string {
  switch (cmd) {
    case CMD_READ:
      return 'read';
    case CMD_WRITE:
      return 'write';
    case CMD_DISC:
      return 'disconnect';
    case CMD_FLUSH:
      return 'flush';
    case CMD_TRIM:
      return 'trim';
    case CMD_BLOCK_STATUS:
      return 'block status';
    default:
      return `command ${cmd}`;
  }
}

/** The few errno values NBD carries on the wire, as names and text. */
const ERRNO: Record<number, [string, string]> = {
  1: ['EPERM', 'operation not permitted'],
  5: ['EIO', 'input/output error'],
  12: ['ENOMEM', 'out of memory'],
  22: ['EINVAL', 'invalid argument'],
  28: ['ENOSPC', 'no space left on device'],
  75: ['EOVERFLOW', 'value too large'],
  95: ['ENOTSUP', 'operation not supported'],
  108: ['ESHUTDOWN', 'server is shutting down'],
};

export function errnoText(errno: number): string {
  const e = ERRNO[errno];
  return e ? `${e[0]} (${e[1]})` : `error ${errno}`;
}

const OPTION_ERRORS: Record<number, string> = {
  [REP_FLAG_ERROR + 1]: 'unsupported option',
  [REP_FLAG_ERROR + 2]: 'forbidden by server policy',
  [REP_FLAG_ERROR + 3]: 'invalid request',
  [REP_FLAG_ERROR + 4]: 'not supported on this platform',
  [REP_FLAG_ERROR + 5]: 'TLS required',
  [REP_FLAG_ERROR + 6]: 'no such export',
  [REP_FLAG_ERROR + 7]: 'server is shutting down',
  [REP_FLAG_ERROR + 8]: 'block size negotiation required',
  [REP_FLAG_ERROR + 9]: 'request too big',
};

export function optionErrorText(type: number): string {
  return OPTION_ERRORS[type] ?? `error reply 0x${type.toString(16)}`;
}

function u64(b: Buffer, at: number, what: string): number {
  const v = b.readBigUInt64BE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new P2vError('NBD', `NBD server sent an impossible ${what} (${v})`, {
      hint: 'the NBD server is not speaking the protocol correctly',
    });
  }
  return Number(v);
}

/** C: IHAVEOPT, option, length, data. */
export function encodeOption(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(16 + data.length);
  b.writeBigUInt64BE(IHAVEOPT, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(data.length, 12);
  data.copy(b, 16);
  return b;
}

/** NBD_OPT_GO data: export name plus the NBD_INFO_* items we ask for. */
export function encodeGo(exportName: string, infos: number[]): Buffer {
  const name = Buffer.from(exportName, 'utf8');
  const b = Buffer.alloc(4 + name.length + 2 + 2 * infos.length);
  b.writeUInt32BE(name.length, 0);
  name.copy(b, 4);
  b.writeUInt16BE(infos.length, 4 + name.length);
  infos.forEach((info, i) => b.writeUInt16BE(info, 6 + name.length + 2 * i));
  return b;
}

/** NBD_OPT_SET_META_CONTEXT data: export name plus context queries. */
export function encodeMetaContext(exportName: string, queries: string[]): Buffer {
  const name = Buffer.from(exportName, 'utf8');
  const qs = queries.map((q) => Buffer.from(q, 'utf8'));
  const b = Buffer.alloc(4 + name.length + 4 + qs.reduce((n, q) => n + 4 + q.length, 0));
  let at = b.writeUInt32BE(name.length, 0);
  at += name.copy(b, at);
  at = b.writeUInt32BE(qs.length, at);
  for (const q of qs) {
    at = b.writeUInt32BE(q.length, at);
    at += q.copy(b, at);
  }
  return b;
}

export interface OptionReplyHeader {
  option: number;
  type: number;
  length: number;
}

/** S: reply magic, option, reply type, length (20 bytes). */
export function decodeOptionReplyHeader(b: Buffer): OptionReplyHeader {
  if (b.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) {
    throw new P2vError('NBD', 'NBD server sent a malformed option reply (bad magic)', {
      hint: 'check that the socket is an NBD server (nbdkit)',
    });
  }
  return { option: b.readUInt32BE(8), type: b.readUInt32BE(12), length: b.readUInt32BE(16) };
}

export type ExportInfoItem =
  | { kind: 'export'; size: number; flags: number }
  | { kind: 'block-size'; min: number; preferred: number; max: number }
  | { kind: 'other'; type: number };

/** Payload of an NBD_REP_INFO reply. */
export function decodeInfo(p: Buffer): ExportInfoItem {
  const bad = () =>
    new P2vError('NBD', 'NBD server sent a malformed export info reply', {
      hint: 'the NBD server is not speaking the protocol correctly',
    });
  if (p.length < 2) throw bad();
  const type = p.readUInt16BE(0);
  if (type === INFO_EXPORT) {
    if (p.length !== 12) throw bad();
    return { kind: 'export', size: u64(p, 2, 'export size'), flags: p.readUInt16BE(10) };
  }
  if (type === INFO_BLOCK_SIZE) {
    if (p.length !== 14) throw bad();
    return { kind: 'block-size', min: p.readUInt32BE(2), preferred: p.readUInt32BE(6), max: p.readUInt32BE(10) };
  }
  return { kind: 'other', type };
}

/** Payload of an NBD_REP_META_CONTEXT reply: context id and name. */
export function decodeMetaContext(p: Buffer): { id: number; name: string } {
  if (p.length < 4)
    throw new P2vError('NBD', 'NBD server sent a malformed meta context reply', {
      hint: 'the NBD server is not speaking the protocol correctly',
    });
  return { id: p.readUInt32BE(0), name: p.subarray(4).toString('utf8') };
}

/** The reply to NBD_OPT_EXPORT_NAME: size and transmission flags (zero padding is read separately). */
export function decodeExportNameReply(b: Buffer): { size: number; flags: number } {
  return { size: u64(b, 0, 'export size'), flags: b.readUInt16BE(8) };
}

/** C: request magic, command flags, type, handle, offset, length (28 bytes). */
export function encodeRequest(cmd: number, flags: number, handle: number, offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(REQUEST_HEADER_SIZE);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(cmd, 6);
  // Handles are our own counters: the high word is always zero.
  b.writeUInt32BE(0, 8);
  b.writeUInt32BE(handle, 12);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(length, 24);
  return b;
}

/** Read a u64 that must fit a JS number, for chunk payloads. */
export function readOffset(b: Buffer, at: number): number {
  return u64(b, at, 'offset');
}

/** NBD_REPLY_TYPE_BLOCK_STATUS payload: context id then (length, status) pairs. */
export function decodeBlockStatus(p: Buffer): { context: number; descriptors: { length: number; status: number }[] } {
  if (p.length < 12 || (p.length - 4) % 8 !== 0) {
    throw new P2vError('NBD', `NBD server sent a malformed block status reply (${p.length} bytes)`, {
      hint: 'the NBD server is not speaking the protocol correctly',
    });
  }
  const descriptors: { length: number; status: number }[] = [];
  for (let at = 4; at < p.length; at += 8)
    descriptors.push({ length: p.readUInt32BE(at), status: p.readUInt32BE(at + 4) });
  return { context: p.readUInt32BE(0), descriptors };
}

/** NBD_REPLY_TYPE_ERROR / ERROR_OFFSET payload. */
export function decodeErrorChunk(type: number, p: Buffer): { errno: number; message: string; offset?: number } {
  if (p.length < 6) return { errno: 5, message: '' };
  const errno = p.readUInt32BE(0);
  const len = p.readUInt16BE(4);
  const message = p.subarray(6, Math.min(p.length, 6 + len)).toString('utf8');
  if (type === CHUNK_ERROR_OFFSET && p.length >= 6 + len + 8) return { errno, message, offset: readOffset(p, 6 + len) };
  return { errno, message };
}
