/**
 * ReplyParser: the transmission-phase state machine. It is fed the socket's
 * data events as they come and holds at most one partial reply header (20
 * bytes) or one small chunk payload between events; read data is copied
 * straight into the buffer of the request it answers, so a large read is
 * never assembled by concatenation, and while a large read is being
 * received the socket reads into that buffer itself (directDest/placed).
 */
import { P2vError } from '../../lib/errors.js';
import * as P from './protocol.js';

/** The buffer a read request fills: `buffer[i]` is byte `offset + i` of the export. */
export interface ReadTarget {
  offset: number;
  buffer: Buffer;
}

/** A structured reply chunk other than OFFSET_DATA (whose bytes went to the target). */
export interface ReplyChunk {
  flags: number;
  type: number;
  /** The chunk's payload; empty for OFFSET_DATA. */
  payload: Buffer;
  /** For OFFSET_DATA: data bytes copied to the target. */
  length: number;
}

export interface ReplySink {
  /** The read target of `handle`, null for a command without data, undefined for a handle we never sent. */
  target(handle: number): ReadTarget | null | undefined;
  /** A simple reply; for a successful read its data is already in the target. */
  simpleReply(handle: number, errno: number): void;
  /** A structured chunk; for OFFSET_DATA the payload is empty and the data is in the target. */
  chunk(handle: number, chunk: ReplyChunk): void;
}

/** Largest non-data chunk payload we accept (block status for a huge, very fragmented range). */
export const MAX_CHUNK_PAYLOAD = 16 * 1024 * 1024;

const EMPTY = Buffer.alloc(0);

type State =
  | { t: 'header' }
  | { t: 'read-data'; handle: number; dest: Buffer; pos: number; end: number }
  | { t: 'data-offset'; handle: number; flags: number; remaining: number }
  | { t: 'chunk-data'; handle: number; flags: number; dest: Buffer; start: number; pos: number; end: number }
  | { t: 'payload'; handle: number; flags: number; type: number; buf: Buffer };

function protocolError(message: string): P2vError {
  return new P2vError('NBD', `NBD protocol error: ${message}`, {
    hint: 'the NBD server is not speaking the protocol correctly; look at its messages',
  });
}

export class ReplyParser {
  private state: State = { t: 'header' };
  private readonly header = Buffer.alloc(P.STRUCTURED_REPLY_SIZE);
  private headerFill = 0;

  constructor(private readonly sink: ReplySink) {}

  /** True between replies: nothing partial is held. */
  get idle(): boolean {
    return this.state.t === 'header' && this.headerFill === 0;
  }

  /** Consume one data event. Throws P2vError on a protocol violation (the connection is then unusable). */
  push(data: Buffer): void {
    let at = 0;
    while (at < data.length) {
      const s = this.state;
      switch (s.t) {
        case 'header':
          at = this.fillHeader(data, at);
          break;
        case 'read-data':
        case 'chunk-data': {
          const n = Math.min(s.end - s.pos, data.length - at);
          data.copy(s.dest, s.pos, at, at + n);
          at += n;
          this.advance(s, n);
          break;
        }
        case 'data-offset':
        case 'payload': {
          const buf = s.t === 'payload' ? s.buf : this.header;
          const want = s.t === 'payload' ? buf.length : 8;
          const n = Math.min(want - this.headerFill, data.length - at);
          data.copy(buf, this.headerFill, at, at + n);
          this.headerFill += n;
          at += n;
          if (this.headerFill === want) {
            this.headerFill = 0;
            if (s.t === 'payload') {
              this.state = { t: 'header' };
              this.sink.chunk(s.handle, { flags: s.flags, type: s.type, payload: s.buf, length: 0 });
            } else this.startChunkData(s.handle, s.flags, s.remaining);
          }
          break;
        }
      }
    }
  }

  /**
   * Where the socket may put the next bytes itself, with no copy: the rest
   * of the read being received, when at least `min` bytes of it are still to
   * come; undefined between replies and for headers and small payloads.
   * After such a read, `placed(n)` says how many bytes landed there.
   */
  directDest(min: number): Buffer | undefined {
    const s = this.state;
    if ((s.t !== 'read-data' && s.t !== 'chunk-data') || s.end - s.pos < min) return undefined;
    return s.dest.subarray(s.pos, s.end);
  }

  /** `n` bytes were read straight into the buffer directDest gave. */
  placed(n: number): void {
    const s = this.state;
    if ((s.t !== 'read-data' && s.t !== 'chunk-data') || n > s.end - s.pos)
      throw new Error('placed() without a direct destination');
    this.advance(s, n);
  }

  private advance(s: Extract<State, { t: 'read-data' | 'chunk-data' }>, n: number): void {
    s.pos += n;
    if (s.pos < s.end) return;
    this.state = { t: 'header' };
    if (s.t === 'read-data') this.sink.simpleReply(s.handle, 0);
    else
      this.sink.chunk(s.handle, {
        flags: s.flags,
        type: P.CHUNK_OFFSET_DATA,
        payload: EMPTY,
        length: s.end - s.start,
      });
  }

  private fillHeader(data: Buffer, at: number): number {
    if (this.headerFill < 4) {
      const n = Math.min(4 - this.headerFill, data.length - at);
      data.copy(this.header, this.headerFill, at, at + n);
      this.headerFill += n;
      at += n;
      if (this.headerFill < 4) return at;
    }
    const magic = this.header.readUInt32BE(0);
    const size =
      magic === P.SIMPLE_REPLY_MAGIC
        ? P.SIMPLE_REPLY_SIZE
        : magic === P.STRUCTURED_REPLY_MAGIC
          ? P.STRUCTURED_REPLY_SIZE
          : 0;
    if (size === 0) throw protocolError(`bad reply magic 0x${magic.toString(16)}`);
    const n = Math.min(size - this.headerFill, data.length - at);
    data.copy(this.header, this.headerFill, at, at + n);
    this.headerFill += n;
    at += n;
    if (this.headerFill < size) return at;
    this.headerFill = 0;
    if (magic === P.SIMPLE_REPLY_MAGIC) this.onSimpleHeader();
    else this.onStructuredHeader();
    return at;
  }

  private handle(at: number): number {
    if (this.header.readUInt32BE(at) !== 0) throw protocolError('reply for a handle we never sent');
    return this.header.readUInt32BE(at + 4);
  }

  private targetOf(handle: number): ReadTarget | null {
    const t = this.sink.target(handle);
    if (t === undefined) throw protocolError(`reply for unknown handle ${handle}`);
    return t;
  }

  private onSimpleHeader(): void {
    const errno = this.header.readUInt32BE(4);
    const handle = this.handle(8);
    const target = this.targetOf(handle);
    if (target && errno === 0 && target.buffer.length > 0) {
      this.state = { t: 'read-data', handle, dest: target.buffer, pos: 0, end: target.buffer.length };
    } else {
      this.sink.simpleReply(handle, errno);
    }
  }

  private onStructuredHeader(): void {
    const flags = this.header.readUInt16BE(4);
    const type = this.header.readUInt16BE(6);
    const handle = this.handle(8);
    const length = this.header.readUInt32BE(16);
    this.targetOf(handle); // reject unknown handles before reading the payload
    if (type === P.CHUNK_OFFSET_DATA) {
      if (length < 8) throw protocolError('data chunk shorter than its offset');
      this.state = { t: 'data-offset', handle, flags, remaining: length - 8 };
      return;
    }
    if (length > MAX_CHUNK_PAYLOAD) throw protocolError(`oversized reply chunk (${length} bytes)`);
    if (length === 0) {
      this.sink.chunk(handle, { flags, type, payload: EMPTY, length: 0 });
      return;
    }
    this.state = { t: 'payload', handle, flags, type, buf: Buffer.allocUnsafe(length) };
  }

  private startChunkData(handle: number, flags: number, length: number): void {
    const offset = P.readOffset(this.header, 0);
    const target = this.targetOf(handle);
    if (!target) throw protocolError('data chunk in reply to a command that reads nothing');
    const pos = offset - target.offset;
    if (pos < 0 || pos + length > target.buffer.length) {
      throw protocolError(
        `data chunk at offset ${offset} (+${length}) outside the read at ${target.offset} (+${target.buffer.length})`,
      );
    }
    if (length === 0) {
      this.state = { t: 'header' };
      this.sink.chunk(handle, { flags, type: P.CHUNK_OFFSET_DATA, payload: EMPTY, length: 0 });
      return;
    }
    this.state = { t: 'chunk-data', handle, flags, dest: target.buffer, start: pos, pos, end: pos + length };
  }
}
