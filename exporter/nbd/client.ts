/**
 * NbdClient: one connection to one NBD export (nbdkit serving the overlay).
 * Requests carry a handle and are answered in any order; a ReplyParser routes
 * each reply to its request. At most `maxInFlight` requests are on the wire,
 * later ones queue; writes wait for the socket to drain. Losing the
 * connection rejects every pending request with one clear error.
 *
 * It stays one file of about 500 lines on purpose: the request table, the
 * in-flight window and the reply routing share one state (pending requests,
 * handles, the dead connection's error), and every way the connection can
 * fail must settle all of it at once; what has a job of its own is already
 * apart (protocol.ts the wire formats, handshake.ts the negotiation,
 * reply-parser.ts the reply stream).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { P2vError } from '../../lib/errors.js';
import { drainedOrGone } from '../../lib/writable.js';
import { HandshakeReader, connectionClosed } from './handshake-reader.js';
import { negotiate } from './handshake.js';
import * as P from './protocol.js';
import { ReplyParser, type ReadTarget, type ReplyChunk } from './reply-parser.js';
import type { NbdBlockSizes, NbdConnectOptions, NbdExportInfo, NbdExtent, NbdTarget } from './types.js';

/** Largest single read or write we send, whatever larger limit the server allows. */
export const MAX_REQUEST = 32 * 1024 * 1024;
/** Largest block status or trim range per request (the length field is 32 bits). */
const MAX_RANGE_REQUEST = 1024 * 1024 * 1024;
const DEFAULT_IN_FLIGHT = 16;
/**
 * The socket reads into one reused buffer of this size (net onread) while no
 * large read is being received: reply headers, small replies, and the first
 * bytes of a read's data, which are copied from it into the read's buffer. Kept
 * small so that a read reply's data mostly goes direct (DIRECT_MIN): at 1 MiB,
 * half of every 2 MiB read came in with its header and was copied.
 */
const RECEIVE_BUFFER = 64 * 1024;
/**
 * While at least this much of a read is still to come, the socket reads
 * into the read's own buffer (net onread with a buffer function), so those
 * bytes are not copied at all: the copy was a tenth of the final pass's CPU.
 */
const DIRECT_MIN = 64 * 1024;

/** Where the socket's bytes go: handed over (`to`), or read in place (`direct`, then `placed`). */
interface Route {
  to: (b: Buffer) => void;
  direct?: () => Buffer | undefined;
  placed?: (n: number) => void;
}

interface Pending {
  cmd: number;
  offset: number;
  length: number;
  target: ReadTarget | null;
  /** Bytes of the read target filled by data and hole chunks so far. */
  covered: number;
  extents: NbdExtent[] | null;
  error: P2vError | undefined;
  resolve: () => void;
  reject: (e: Error) => void;
}

function describe(target: NbdTarget): string {
  return 'socket' in target ? target.socket : `${target.host}:${target.port}`;
}

export class NbdClient {
  readonly size: number;
  readonly readOnly: boolean;
  readonly canTrim: boolean;
  readonly canFlush: boolean;
  /** Block status works (structured replies and base:allocation were agreed). */
  readonly canBlockStatus: boolean;
  readonly blockSizes?: NbdBlockSizes;

  private readonly pending = new Map<number, Pending>();
  private readonly parser: ReplyParser;
  private readonly maxInFlight: number;
  private inFlight = 0;
  private readonly slotWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private idleWaiters: (() => void)[] = [];
  private nextHandle = 1;
  private dead: P2vError | undefined;
  private closing: Promise<void> | undefined;
  private socketError: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly info: NbdExportInfo,
    private readonly where: string,
    maxInFlight: number,
    private readonly route: Route,
  ) {
    this.size = info.size;
    this.readOnly = (info.flags & P.TFLAG_READ_ONLY) !== 0;
    this.canTrim = (info.flags & P.TFLAG_SEND_TRIM) !== 0;
    this.canFlush = (info.flags & P.TFLAG_SEND_FLUSH) !== 0;
    this.canBlockStatus = info.structuredReplies && info.allocationContext !== undefined;
    if (info.blockSizes) this.blockSizes = info.blockSizes;
    this.maxInFlight = Math.max(1, maxInFlight);
    this.parser = new ReplyParser({
      target: (h) => {
        const p = this.pending.get(h);
        return p ? p.target : undefined;
      },
      simpleReply: (h, errno) => this.onSimpleReply(h, errno),
      chunk: (h, c) => this.onChunk(h, c),
    });
  }

  /** Connect and negotiate; the client is ready for requests when this resolves. */
  static async connect(target: NbdTarget, opts: NbdConnectOptions = {}): Promise<NbdClient> {
    const where = describe(target);
    const reader = new HandshakeReader();
    // Until transmission the reader keeps what it is given, so it gets copies of the shared receive buffer.
    const route: Route = { to: (b: Buffer) => reader.push(Buffer.from(b)) };
    const shared = Buffer.allocUnsafe(RECEIVE_BUFFER);
    let direct = false;
    const onread = {
      // Asked before each socket read: the read's own buffer while a large read is received, else the shared one.
      buffer: () => {
        const into = route.direct?.();
        direct = into !== undefined;
        return into ?? shared;
      },
      callback: (n: number, buf: Uint8Array) => {
        if (direct) route.placed!(n);
        else route.to(Buffer.from(buf.buffer, buf.byteOffset, n));
        return true;
      },
    };
    const socket =
      'socket' in target
        ? netConnect({ path: target.socket, onread })
        : netConnect({ host: target.host, port: target.port, onread, noDelay: true });
    const onError = (e: Error) => reader.fail(e);
    const onClose = () => reader.fail(connectionClosed('the handshake'));
    socket.on('error', onError);
    socket.on('close', onClose);
    const timeoutMs = opts.handshakeTimeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      reader.fail(
        new P2vError('NBD', `NBD handshake with ${where} timed out after ${timeoutMs / 1000} s`, {
          hint: 'check that nbdkit is running and not stuck',
        }),
      );
      socket.destroy();
    }, timeoutMs);
    try {
      const info = await negotiate(reader, (b) => socket.write(b), opts.exportName ?? '');
      const client = new NbdClient(socket, info, where, opts.maxInFlight ?? DEFAULT_IN_FLIGHT, route);
      socket.off('error', onError);
      socket.off('close', onClose);
      client.attach(reader.takeRest());
      return client;
    } catch (e) {
      socket.destroy();
      if (e instanceof P2vError) throw e;
      const err = e as NodeJS.ErrnoException;
      throw new P2vError('NBD', `cannot connect to NBD server at ${where}: ${err.code ?? err.message}`, {
        cause: e,
        hint: 'check that nbdkit is running and serving that socket',
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Read `length` bytes at `offset`, split into requests the server accepts. */
  async pread(offset: number, length: number): Promise<Buffer> {
    this.checkRange('read', offset, length);
    const min = this.blockSizes?.min ?? 1;
    const end = offset + length;
    if (min > 1 && (offset % min !== 0 || (end % min !== 0 && end !== this.size))) {
      // The server only takes aligned requests: read the enclosing aligned
      // range (the export's unaligned tail, if any, is the one exception).
      const start = offset - (offset % min);
      const alignedEnd = Math.min(this.size, Math.ceil(end / min) * min);
      const whole = await this.pread(start, alignedEnd - start);
      return whole.subarray(offset - start, offset - start + length);
    }
    // Not zeroed: a successful reply must cover every byte (checked in finish()).
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, out);
    return out;
  }

  /**
   * Read `into.length` bytes at `offset` into a buffer the caller owns (and
   * may reuse: a fresh buffer per read costs a page fault per 4 KiB, which
   * was most of a delta's read time, bench/README.md).
   */
  async preadInto(offset: number, into: Buffer): Promise<void> {
    this.checkRange('read', offset, into.length);
    const min = this.blockSizes?.min ?? 1;
    const end = offset + into.length;
    if (min > 1 && (offset % min !== 0 || (end % min !== 0 && end !== this.size))) {
      (await this.pread(offset, into.length)).copy(into);
      return;
    }
    await this.readInto(offset, into);
  }

  private async readInto(offset: number, out: Buffer): Promise<void> {
    const length = out.length;
    if (length === 0) return;
    const step = this.maxRequest();
    const parts: Promise<void>[] = [];
    for (let at = 0; at < length; at += step) {
      const n = Math.min(step, length - at);
      parts.push(this.submit(P.CMD_READ, offset + at, n, { offset: offset + at, buffer: out.subarray(at, at + n) }));
    }
    await Promise.all(parts);
  }

  /**
   * base:allocation state from `offset`: consecutive extents covering at most
   * `length` bytes (the server may describe less; ask again from the end).
   * Without block status support the whole range is reported as data.
   */
  async blockStatus(offset: number, length: number): Promise<NbdExtent[]> {
    this.checkRange('block status', offset, length);
    if (length === 0) return [];
    if (!this.canBlockStatus) return [{ offset, length, hole: false, zero: false }];
    const n = Math.min(length, MAX_RANGE_REQUEST);
    const extents: NbdExtent[] = [];
    await this.submit(P.CMD_BLOCK_STATUS, offset, n, null, extents);
    if (extents.length === 0) throw this.requestError(P.CMD_BLOCK_STATUS, offset, n, 'the server described no extent');
    // Clip what lies past the range we asked about.
    const end = offset + n;
    const out: NbdExtent[] = [];
    for (const e of extents) {
      if (e.offset >= end) break;
      out.push(e.offset + e.length > end ? { ...e, length: end - e.offset } : e);
    }
    return out;
  }

  /** The whole export's extents in order, adjacent runs of the same state merged. */
  async *extents(opts: { chunk?: number } = {}): AsyncGenerator<NbdExtent> {
    const chunk = Math.max(1, opts.chunk ?? MAX_RANGE_REQUEST);
    let run: NbdExtent | undefined;
    let at = 0;
    while (at < this.size) {
      const list = await this.blockStatus(at, Math.min(chunk, this.size - at));
      for (const e of list) {
        if (run && run.hole === e.hole && run.zero === e.zero && run.offset + run.length === e.offset) {
          run.length += e.length;
        } else {
          if (run) yield run;
          run = { ...e };
        }
        at = e.offset + e.length;
      }
    }
    if (run) yield run;
  }

  async pwrite(offset: number, data: Buffer): Promise<void> {
    this.checkRange('write', offset, data.length);
    if (this.readOnly) throw this.requestError(P.CMD_WRITE, offset, data.length, 'the export is read-only');
    const step = this.maxRequest();
    const parts: Promise<void>[] = [];
    for (let at = 0; at < data.length; at += step) {
      const n = Math.min(step, data.length - at);
      parts.push(this.submit(P.CMD_WRITE, offset + at, n, null, null, data.subarray(at, at + n)));
    }
    await Promise.all(parts);
  }

  /** Tell the server the range is no longer needed (it may then read as zeros). */
  async trim(offset: number, length: number): Promise<void> {
    this.checkRange('trim', offset, length);
    if (!this.canTrim) throw this.requestError(P.CMD_TRIM, offset, length, 'the server does not support trim');
    const parts: Promise<void>[] = [];
    for (let at = 0; at < length; at += MAX_RANGE_REQUEST) {
      parts.push(this.submit(P.CMD_TRIM, offset + at, Math.min(MAX_RANGE_REQUEST, length - at), null));
    }
    await Promise.all(parts);
  }

  /** Make completed writes durable; a no-op when the server has no flush. */
  async flush(): Promise<void> {
    if (this.canFlush) await this.submit(P.CMD_FLUSH, 0, 0, null);
  }

  /**
   * Wait for requests on the wire, send NBD_CMD_DISC and end the socket.
   * Idempotent; after a lost connection it just releases the socket.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    while (!this.dead && (this.inFlight > 0 || this.slotWaiters.length > 0)) {
      await new Promise<void>((r) => this.idleWaiters.push(r));
    }
    if (this.dead) {
      this.socket.destroy();
      return;
    }
    const closed = new Promise<void>((r) => {
      if (this.socket.destroyed) r();
      else this.socket.once('close', () => r());
    });
    this.dead = new P2vError('NBD', `the connection to ${this.where} is closed`, {
      hint: 'this is a bug in p2v: a request was made after close()',
    });
    this.socket.end(P.encodeRequest(P.CMD_DISC, 0, this.takeHandle(), 0, 0));
    const timer = setTimeout(() => this.socket.destroy(), 5000);
    await closed;
    clearTimeout(timer);
  }

  private attach(rest: Buffer[]): void {
    const guarded = (f: () => void) => {
      if (this.dead && this.pending.size === 0) return;
      try {
        f();
      } catch (e) {
        this.fail(
          e instanceof P2vError ? e : new P2vError('NBD', `NBD reply handling failed: ${String(e)}`, { cause: e }),
        );
      }
    };
    this.route.to = (b: Buffer) => guarded(() => this.parser.push(b));
    this.route.direct = () => (this.dead ? undefined : this.parser.directDest(DIRECT_MIN));
    this.route.placed = (n: number) => guarded(() => this.parser.placed(n));
    this.socket.on('error', (e) => (this.socketError ??= e));
    this.socket.on('close', () => {
      const n = this.pending.size + this.slotWaiters.length;
      const cause = this.socketError
        ? ` (${(this.socketError as NodeJS.ErrnoException).code ?? this.socketError.message})`
        : '';
      this.fail(
        new P2vError(
          'NBD',
          `lost the connection to the NBD server at ${this.where}${cause} with ${n} request${n === 1 ? '' : 's'} pending`,
          {
            hint: 'nbdkit exited or was killed: look at its messages above',
            ...(this.socketError ? { cause: this.socketError } : {}),
          },
        ),
      );
    });
    for (const b of rest) this.parser.push(b);
  }

  /** Make the connection unusable and reject everything waiting on it. */
  private fail(e: P2vError): void {
    if (!this.dead) this.dead = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    for (const w of this.slotWaiters.splice(0)) w.reject(e);
    this.inFlight = 0;
    this.wakeIdle();
    this.socket.destroy();
  }

  private maxRequest(): number {
    const max = this.blockSizes?.max;
    return max && max > 0 ? Math.min(max, MAX_REQUEST) : MAX_REQUEST;
  }

  private checkRange(what: string, offset: number, length: number): void {
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > this.size
    ) {
      throw new P2vError(
        'NBD',
        `NBD ${what} of ${length} bytes at offset ${offset} lies outside the ${this.size}-byte export`,
        {
          hint: 'this is a bug in p2v: please report it',
        },
      );
    }
  }

  private requestError(cmd: number, offset: number, length: number, why: string): P2vError {
    return new P2vError('NBD', `NBD ${P.commandName(cmd)} of ${length} bytes at offset ${offset} failed: ${why}`, {
      hint:
        cmd === P.CMD_READ
          ? 'the source disk may have a bad sector: check dmesg and the disk (smartctl), and look at the nbdkit messages'
          : 'look at the nbdkit messages and the space left for the overlay',
    });
  }

  private takeHandle(): number {
    do {
      this.nextHandle = this.nextHandle >= 0xffffffff ? 1 : this.nextHandle + 1;
    } while (this.pending.has(this.nextHandle));
    return this.nextHandle;
  }

  private async acquire(): Promise<void> {
    if (this.dead) throw this.dead;
    if (this.inFlight < this.maxInFlight && this.slotWaiters.length === 0) {
      this.inFlight++;
      return;
    }
    // A released slot passes straight to the first waiter (inFlight unchanged).
    await new Promise<void>((resolve, reject) => this.slotWaiters.push({ resolve, reject }));
  }

  private release(): void {
    const next = this.slotWaiters.shift();
    if (next) next.resolve();
    else {
      this.inFlight--;
      this.wakeIdle();
    }
  }

  private wakeIdle(): void {
    if (this.inFlight > 0 && !this.dead) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private async drained(): Promise<void> {
    while (this.socket.writableNeedDrain && !this.dead) await drainedOrGone(this.socket);
  }

  private async submit(
    cmd: number,
    offset: number,
    length: number,
    target: ReadTarget | null,
    extents: NbdExtent[] | null = null,
    payload?: Buffer,
  ): Promise<void> {
    await this.acquire();
    await this.drained();
    if (this.dead) {
      // fail() already reset the slot count.
      throw this.dead;
    }
    const handle = this.takeHandle();
    return new Promise<void>((resolve, reject) => {
      this.pending.set(handle, { cmd, offset, length, target, covered: 0, extents, error: undefined, resolve, reject });
      this.socket.write(P.encodeRequest(cmd, 0, handle, offset, length));
      if (payload) this.socket.write(payload);
    });
  }

  private finish(handle: number): void {
    const p = this.pending.get(handle);
    if (!p) return;
    this.pending.delete(handle);
    this.release();
    if (!p.error && p.target && p.covered !== p.target.buffer.length) {
      p.error = this.requestError(
        p.cmd,
        p.offset,
        p.length,
        `the server's reply covered ${p.covered} of ${p.target.buffer.length} bytes`,
      );
    }
    if (p.error) p.reject(p.error);
    else p.resolve();
  }

  private onSimpleReply(handle: number, errno: number): void {
    const p = this.pending.get(handle)!;
    if (errno !== 0) p.error ??= this.requestError(p.cmd, p.offset, p.length, P.errnoText(errno));
    else if (p.target) p.covered = p.target.buffer.length;
    this.finish(handle);
  }

  private onChunk(handle: number, c: ReplyChunk): void {
    const p = this.pending.get(handle)!;
    if (P.isChunkError(c.type)) {
      const e = P.decodeErrorChunk(c.type, c.payload);
      const where = e.offset !== undefined && e.offset !== p.offset ? ` (at offset ${e.offset})` : '';
      p.error ??= this.requestError(
        p.cmd,
        p.offset,
        p.length,
        `${P.errnoText(e.errno)}${where}${e.message ? `: ${e.message}` : ''}`,
      );
    } else if (c.type === P.CHUNK_OFFSET_DATA) {
      p.covered += c.length;
    } else if (c.type === P.CHUNK_OFFSET_HOLE) {
      this.fillHole(p, c.payload);
    } else if (c.type === P.CHUNK_BLOCK_STATUS) {
      this.addExtents(p, c.payload);
    } else if (c.type !== P.CHUNK_NONE) {
      throw new P2vError('NBD', `NBD protocol error: unknown reply chunk type ${c.type}`, {
        hint: 'the NBD server is not speaking the protocol correctly',
      });
    }
    if (c.flags & P.REPLY_FLAG_DONE) this.finish(handle);
  }

  private fillHole(p: Pending, payload: Buffer): void {
    const t = p.target;
    if (!t || payload.length !== 12)
      throw new P2vError('NBD', 'NBD protocol error: malformed hole chunk', {
        hint: 'the NBD server is not speaking the protocol correctly',
      });
    const pos = P.readOffset(payload, 0) - t.offset;
    const len = payload.readUInt32BE(8);
    if (pos < 0 || pos + len > t.buffer.length)
      throw new P2vError('NBD', 'NBD protocol error: hole chunk outside the read', {
        hint: 'the NBD server is not speaking the protocol correctly',
      });
    t.buffer.fill(0, pos, pos + len);
    p.covered += len;
  }

  private addExtents(p: Pending, payload: Buffer): void {
    if (!p.extents)
      throw new P2vError('NBD', 'NBD protocol error: block status chunk for another command', {
        hint: 'the NBD server is not speaking the protocol correctly',
      });
    const { context, descriptors } = P.decodeBlockStatus(payload);
    if (context !== this.info.allocationContext) return;
    let at = p.offset;
    const last = p.extents[p.extents.length - 1];
    if (last) at = last.offset + last.length;
    for (const d of descriptors) {
      if (d.length === 0)
        throw new P2vError('NBD', 'NBD protocol error: zero-length extent', {
          hint: 'the NBD server is not speaking the protocol correctly',
        });
      p.extents.push({
        offset: at,
        length: d.length,
        hole: (d.status & P.STATE_HOLE) !== 0,
        zero: (d.status & P.STATE_ZERO) !== 0,
      });
      at += d.length;
    }
  }
}
