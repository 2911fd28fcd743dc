/**
 * A small NBD server (fixed newstyle, simple replies) that serves the
 * concatenation of byte ranges of host files as one export. It is how an LV of
 * several segments, or on several PVs, becomes one device without
 * device-mapper: the ranges are ranges of the overlays' nbdfuse files, nbdfuse
 * exposes this export as a file again, and a loop device goes on top.
 *
 *   reads and writes   → pread/pwrite on the range's file (so on the overlay)
 *   trims              → fallocate --punch-hole on the file: nbdfuse turns it
 *                        into an NBD trim on the overlay, which then reports a hole
 *   flush              → fdatasync of every file
 *
 * Requests are served one at a time per connection, in order; nbdfuse's
 * kernel side keeps several connections' worth of queue anyway.
 *
 *   serveComposed(ranges, socket): Promise<ComposedServer>
 */
import { open, type FileHandle } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { run } from '../../lib/run.js';
import * as P from '../nbd/protocol.js';

export interface ComposedRange {
  file: string;
  offset: number;
  size: number;
}

export interface ComposedServer {
  size: number;
  close(): Promise<void>;
}

// Server side of the same wire format our client speaks (exporter/nbd/protocol.ts).
const TFLAGS = P.TFLAG_HAS_FLAGS | P.TFLAG_SEND_FLUSH | P.TFLAG_SEND_TRIM;
const EIO = 5;
const MAX_REQUEST = 64 * 1024 * 1024;
const EINVAL = 22;

/** Buffered reads of exact sizes from a socket. */
class Input {
  private chunks: Buffer[] = [];
  private have = 0;
  private waiter: (() => void) | null = null;
  private ended = false;
  constructor(sock: Socket) {
    sock.on('data', (b: Buffer) => {
      this.chunks.push(b);
      this.have += b.length;
      this.waiter?.();
    });
    const end = () => {
      this.ended = true;
      this.waiter?.();
    };
    sock.on('end', end);
    sock.on('close', end);
    sock.on('error', end);
  }
  async read(n: number): Promise<Buffer | null> {
    while (this.have < n) {
      if (this.ended) return null;
      await new Promise<void>((r) => (this.waiter = r));
      this.waiter = null;
    }
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.have -= n;
    return all.subarray(0, n);
  }
}

interface Piece {
  fh: FileHandle;
  file: string;
  at: number;
  len: number;
  /** Offset within the request. */
  pos: number;
}

export async function serveComposed(ranges: ComposedRange[], socketPath: string): Promise<ComposedServer> {
  const handles = new Map<string, FileHandle>();
  for (const r of ranges) if (!handles.has(r.file)) handles.set(r.file, await open(r.file, 'r+'));
  const starts: number[] = [];
  let size = 0;
  for (const r of ranges) {
    starts.push(size);
    size += r.size;
  }
  const pieces = (offset: number, length: number): Piece[] | null => {
    if (offset < 0 || length < 0 || offset + length > size) return null;
    const out: Piece[] = [];
    let pos = 0;
    for (let i = 0; i < ranges.length && pos < length; i++) {
      const r = ranges[i]!;
      const s = starts[i]!;
      const here = offset + pos;
      if (here >= s + r.size || here < s) continue;
      const len = Math.min(length - pos, s + r.size - here);
      out.push({ fh: handles.get(r.file)!, file: r.file, at: r.offset + (here - s), len, pos });
      pos += len;
    }
    return out;
  };

  const optReply = (sock: Socket, opt: number, type: number, data = Buffer.alloc(0)) => {
    const h = Buffer.alloc(20);
    h.writeBigUInt64BE(P.OPTION_REPLY_MAGIC, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(type, 12);
    h.writeUInt32BE(data.length, 16);
    sock.write(Buffer.concat([h, data]));
  };
  const reply = (sock: Socket, handle: Buffer, error: number, data?: Buffer) => {
    const h = Buffer.alloc(P.SIMPLE_REPLY_SIZE);
    h.writeUInt32BE(P.SIMPLE_REPLY_MAGIC, 0);
    h.writeUInt32BE(error, 4);
    handle.copy(h, 8);
    sock.write(data ? Buffer.concat([h, data]) : h);
  };

  /** Negotiation; true when the client moved to transmission. */
  const negotiate = async (sock: Socket, input: Input): Promise<boolean> => {
    const hello = Buffer.alloc(18);
    hello.writeBigUInt64BE(P.NBDMAGIC, 0);
    hello.writeBigUInt64BE(P.IHAVEOPT, 8);
    hello.writeUInt16BE(P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES, 16);
    sock.write(hello);
    const cflags = await input.read(4);
    if (!cflags) return false;
    const noZeroes = (cflags.readUInt32BE(0) & P.FLAG_NO_ZEROES) !== 0;
    for (;;) {
      const h = await input.read(16);
      if (!h || h.readBigUInt64BE(0) !== P.IHAVEOPT) return false;
      const opt = h.readUInt32BE(8);
      const len = h.readUInt32BE(12);
      if (len > 65536) return false;
      if (len && !(await input.read(len))) return false;
      if (opt === P.OPT_EXPORT_NAME) {
        const b = Buffer.alloc(noZeroes ? 10 : 134);
        b.writeBigUInt64BE(BigInt(size), 0);
        b.writeUInt16BE(TFLAGS, 8);
        sock.write(b);
        return true;
      }
      if (opt === P.OPT_GO || opt === P.OPT_INFO) {
        const info = Buffer.alloc(12);
        info.writeUInt16BE(P.INFO_EXPORT, 0);
        info.writeBigUInt64BE(BigInt(size), 2);
        info.writeUInt16BE(TFLAGS, 10);
        optReply(sock, opt, P.REP_INFO, info);
        optReply(sock, opt, P.REP_ACK);
        if (opt === P.OPT_GO) return true;
        continue;
      }
      if (opt === P.OPT_ABORT) {
        optReply(sock, opt, P.REP_ACK);
        return false;
      }
      optReply(sock, opt, P.REP_ERR_UNSUP);
    }
  };

  const serve = async (sock: Socket) => {
    const input = new Input(sock);
    if (!(await negotiate(sock, input))) return sock.end();
    for (;;) {
      const h = await input.read(P.REQUEST_HEADER_SIZE);
      if (!h || h.readUInt32BE(0) !== P.REQUEST_MAGIC) return sock.end();
      const type = h.readUInt16BE(6);
      const handle = h.subarray(8, 16);
      const offset = Number(h.readBigUInt64BE(16));
      const length = h.readUInt32BE(24);
      // nbdfuse asks for at most 32 MiB; anything larger would make us buffer what the peer chooses.
      if (length > MAX_REQUEST) return sock.end();
      const data = type === P.CMD_WRITE ? await input.read(length) : null;
      if (type === P.CMD_WRITE && !data) return sock.end();
      if (type === P.CMD_DISC) return sock.end();
      try {
        if (type === P.CMD_FLUSH) {
          for (const fh of handles.values()) await fh.datasync();
          reply(sock, handle, 0);
          continue;
        }
        const ps = pieces(offset, length);
        if (!ps || ![P.CMD_READ, P.CMD_WRITE, P.CMD_TRIM].includes(type)) {
          reply(sock, handle, EINVAL);
          continue;
        }
        if (type === P.CMD_READ) {
          const buf = Buffer.alloc(length);
          for (const p of ps) await p.fh.read(buf, p.pos, p.len, p.at);
          reply(sock, handle, 0, buf);
        } else if (type === P.CMD_WRITE) {
          for (const p of ps) await p.fh.write(data!, p.pos, p.len, p.at);
          reply(sock, handle, 0);
        } else {
          for (const p of ps)
            await run('fallocate', ['--punch-hole', '--keep-size', '-o', String(p.at), '-l', String(p.len), p.file], {
              what: 'trimming a composed LV range',
            });
          reply(sock, handle, 0);
        }
      } catch {
        // A simple error reply carries no payload: the kernel logs an I/O error and the caller sees it.
        reply(sock, handle, EIO);
      }
    }
  };

  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    serve(sock).catch(() => sock.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  let closed = false;
  return {
    size,
    async close() {
      if (closed) return;
      closed = true;
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      for (const fh of handles.values()) await fh.close().catch(() => undefined);
    },
  };
}
