import { describe, expect, it } from 'vitest';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { NbdClient } from '../../../exporter/nbd/index.js';
import { HandshakeReader } from '../../../exporter/nbd/handshake-reader.js';
import * as P from '../../../exporter/nbd/protocol.js';
import { withTmpDir } from '../../helpers/tmp.js';

// A scripted NBD server for what nbdkit never does: misbehaving replies and
// servers without NBD_OPT_GO. It speaks just enough of the protocol.

interface Request {
  cmd: number;
  handle: Buffer;
  offset: number;
  length: number;
}

type Script = (req: Request, sock: Socket) => void;

const SIZE = 1024 * 1024;

function optionReply(option: number, type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(20);
  h.writeBigUInt64BE(P.OPTION_REPLY_MAGIC, 0);
  h.writeUInt32BE(option, 8);
  h.writeUInt32BE(type, 12);
  h.writeUInt32BE(payload.length, 16);
  return Buffer.concat([h, payload]);
}

function chunk(handle: Buffer, flags: number, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt32BE(P.STRUCTURED_REPLY_MAGIC, 0);
  h.writeUInt16BE(flags, 4);
  h.writeUInt16BE(type, 6);
  handle.copy(h, 8);
  h.writeUInt32BE(payload.length, 16);
  return Buffer.concat([h, payload]);
}

function dataAt(offset: number, data: Buffer): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(offset));
  return Buffer.concat([b, data]);
}

async function serve(sock: Socket, goSupported: boolean, script: Script): Promise<void> {
  const r = new HandshakeReader();
  sock.on('data', (b: Buffer) => r.push(b));
  sock.on('close', () => r.fail(new Error('closed')));
  sock.on('error', () => undefined);
  const hello = Buffer.alloc(18);
  hello.writeBigUInt64BE(P.NBDMAGIC, 0);
  hello.writeBigUInt64BE(P.IHAVEOPT, 8);
  hello.writeUInt16BE(P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES, 16);
  sock.write(hello);
  await r.read(4);
  for (;;) {
    const h = await r.read(16);
    const option = h.readUInt32BE(8);
    const len = h.readUInt32BE(12);
    if (len) await r.read(len);
    if (option === P.OPT_STRUCTURED_REPLY) sock.write(optionReply(option, P.REP_ACK));
    else if (option === P.OPT_SET_META_CONTEXT) {
      const ctx = Buffer.concat([Buffer.from([0, 0, 0, 1]), Buffer.from(P.ALLOCATION_CONTEXT)]);
      sock.write(Buffer.concat([optionReply(option, P.REP_META_CONTEXT, ctx), optionReply(option, P.REP_ACK)]));
    } else if (option === P.OPT_GO && !goSupported) sock.write(optionReply(option, P.REP_ERR_UNSUP));
    else if (option === P.OPT_GO || option === P.OPT_EXPORT_NAME) {
      const info = Buffer.alloc(12);
      info.writeUInt16BE(P.INFO_EXPORT, 0);
      info.writeBigUInt64BE(BigInt(SIZE), 2);
      info.writeUInt16BE(P.TFLAG_HAS_FLAGS | P.TFLAG_SEND_FLUSH, 10);
      // EXPORT_NAME's answer is size + flags with no option reply header (NO_ZEROES agreed).
      sock.write(
        option === P.OPT_GO
          ? Buffer.concat([optionReply(option, P.REP_INFO, info), optionReply(option, P.REP_ACK)])
          : info.subarray(2),
      );
      break;
    } else sock.write(optionReply(option, P.REP_ERR_UNSUP));
  }
  for (;;) {
    const q = await r.read(28);
    const req = {
      cmd: q.readUInt16BE(6),
      handle: q.subarray(8, 16),
      offset: Number(q.readBigUInt64BE(16)),
      length: q.readUInt32BE(24),
    };
    if (req.cmd === P.CMD_DISC) return void sock.end();
    script(req, sock);
  }
}

async function withServer<T>(goSupported: boolean, script: Script, body: (socket: string) => Promise<T>): Promise<T> {
  return withTmpDir('nbd-hostile', async (dir) => {
    const path = join(dir, 's.sock');
    const sockets = new Set<Socket>();
    const server: Server = createServer((s) => {
      sockets.add(s);
      serve(s, goSupported, script).catch(() => s.destroy());
    });
    await new Promise<void>((res) => server.listen(path, res));
    try {
      return await body(path);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((res) => server.close(res));
    }
  });
}

describe('NbdClient against a misbehaving server', () => {
  it('falls back to NBD_OPT_EXPORT_NAME and keeps structured replies when NBD_OPT_GO is unsupported', async () => {
    const script: Script = (req, sock) => {
      const data = Buffer.alloc(req.length, req.offset & 0xff);
      // Answer in two data chunks, second half first.
      const half = req.length >> 1;
      sock.write(chunk(req.handle, 0, P.CHUNK_OFFSET_DATA, dataAt(req.offset + half, data.subarray(half))));
      sock.write(chunk(req.handle, P.REPLY_FLAG_DONE, P.CHUNK_OFFSET_DATA, dataAt(req.offset, data.subarray(0, half))));
    };
    await withServer(false, script, async (socket) => {
      const c = await NbdClient.connect({ socket });
      try {
        expect(c.size).toBe(SIZE);
        expect(c.canBlockStatus).toBe(true);
        expect((await c.pread(4096 + 7, 1000)).equals(Buffer.alloc(1000, 7))).toBe(true);
      } finally {
        await c.close();
      }
    });
  });

  it('refuses a read reply that leaves bytes uncovered, instead of returning stale memory', async () => {
    const script: Script = (req, sock) => {
      sock.write(
        chunk(req.handle, P.REPLY_FLAG_DONE, P.CHUNK_OFFSET_DATA, dataAt(req.offset, Buffer.alloc(req.length >> 1, 1))),
      );
    };
    await withServer(true, script, async (socket) => {
      const c = await NbdClient.connect({ socket });
      try {
        await expect(c.pread(0, 1024)).rejects.toThrow(
          "NBD read of 1024 bytes at offset 0 failed: the server's reply covered 512 of 1024 bytes",
        );
      } finally {
        await c.close();
      }
    });
  });

  it('passes the server error text on, and drops the connection on a reply to a handle never sent', async () => {
    let n = 0;
    const script: Script = (req, sock) => {
      if (n++ === 0) {
        const msg = Buffer.from('medium error');
        const p = Buffer.alloc(6 + msg.length + 8);
        p.writeUInt32BE(5, 0);
        p.writeUInt16BE(msg.length, 4);
        msg.copy(p, 6);
        p.writeBigUInt64BE(BigInt(req.offset + 512), 6 + msg.length);
        sock.write(chunk(req.handle, P.REPLY_FLAG_DONE, P.CHUNK_ERROR_OFFSET, p));
      } else {
        const bogus = Buffer.from(req.handle);
        bogus.writeUInt32BE(0xdead, 4);
        sock.write(chunk(bogus, P.REPLY_FLAG_DONE, P.CHUNK_NONE, Buffer.alloc(0)));
      }
    };
    await withServer(true, script, async (socket) => {
      const c = await NbdClient.connect({ socket });
      try {
        await expect(c.pread(0, 4096)).rejects.toThrow(
          'NBD read of 4096 bytes at offset 0 failed: EIO (input/output error) (at offset 512): medium error',
        );
        const a = c.pread(0, 10);
        const b = c.pread(10, 10);
        await expect(a).rejects.toThrow(/NBD protocol error: reply for unknown handle 57005/);
        await expect(b).rejects.toThrow(/NBD protocol error/);
        await expect(c.flush()).rejects.toThrow(/NBD protocol error/);
      } finally {
        await c.close();
      }
    });
  });
});
