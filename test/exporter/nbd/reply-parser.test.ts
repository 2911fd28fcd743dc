import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { ReplyParser, type ReadTarget, type ReplyChunk } from '../../../exporter/nbd/reply-parser.js';
import * as P from '../../../exporter/nbd/protocol.js';
import { isP2vError } from '../../../lib/errors.js';

// Frames built from the protocol document's layouts, fed to the parser split
// at every possible point: the state machine must not care where data events end.

function simple(handle: number, errno: number, data?: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32BE(P.SIMPLE_REPLY_MAGIC, 0);
  h.writeUInt32BE(errno, 4);
  h.writeUInt32BE(handle, 12);
  return data ? Buffer.concat([h, data]) : h;
}

function structured(handle: number, flags: number, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt32BE(P.STRUCTURED_REPLY_MAGIC, 0);
  h.writeUInt16BE(flags, 4);
  h.writeUInt16BE(type, 6);
  h.writeUInt32BE(handle, 12);
  h.writeUInt32BE(payload.length, 16);
  return Buffer.concat([h, payload]);
}

function offsetData(offset: number, data: Buffer): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(offset));
  return Buffer.concat([b, data]);
}

interface Seen {
  simple: [number, number][];
  chunks: [number, ReplyChunk][];
}

function parserFor(targets: Map<number, ReadTarget | null>): { parser: ReplyParser; seen: Seen } {
  const seen: Seen = { simple: [], chunks: [] };
  const parser = new ReplyParser({
    target: (h) => targets.get(h),
    simpleReply: (h, e) => seen.simple.push([h, e]),
    chunk: (h, c) => seen.chunks.push([h, { ...c, payload: Buffer.from(c.payload) }]),
  });
  return { parser, seen };
}

describe('ReplyParser', () => {
  const data = randomBytes(1000);
  const stream = Buffer.concat([
    simple(7, 0, data.subarray(0, 300)), // simple read reply, data follows
    simple(8, 5), // error reply to a read: no data follows
    structured(9, 0, P.CHUNK_OFFSET_DATA, offsetData(4096 + 500, data.subarray(500, 1000))),
    structured(9, 0, P.CHUNK_OFFSET_HOLE, Buffer.from([0, 0, 0, 0, 0, 0, 0x10, 0x00, 0, 0, 0, 200])),
    structured(9, P.REPLY_FLAG_DONE, P.CHUNK_OFFSET_DATA, offsetData(4096 + 200, data.subarray(200, 500))),
    structured(10, P.REPLY_FLAG_DONE, P.CHUNK_NONE, Buffer.alloc(0)),
  ]);

  /** The four requests `stream` answers: 7 and 8 simple reads, 9 a structured read, 10 no data. */
  function requests() {
    const t7 = { offset: 0, buffer: Buffer.alloc(300) };
    const t9 = { offset: 4096, buffer: Buffer.alloc(1000, 0xff) };
    const { parser, seen } = parserFor(
      new Map<number, ReadTarget | null>([
        [7, t7],
        [8, { offset: 0, buffer: Buffer.alloc(300) }],
        [9, t9],
        [10, null],
      ]),
    );
    return { parser, seen, t7, t9 };
  }

  function expectAllRouted(r: ReturnType<typeof requests>): void {
    expect(r.parser.idle).toBe(true);
    expect(r.seen.simple).toEqual([
      [7, 0],
      [8, 5],
    ]);
    expect(r.t7.buffer.equals(data.subarray(0, 300))).toBe(true);
    // Bytes 0..200 of request 9 came as a hole chunk (the client zeroes them); the rest as data.
    expect(r.t9.buffer.subarray(200).equals(data.subarray(200, 1000))).toBe(true);
    expect(r.seen.chunks.map(([h, c]) => [h, c.type, c.flags, c.length])).toEqual([
      [9, P.CHUNK_OFFSET_DATA, 0, 500],
      [9, P.CHUNK_OFFSET_HOLE, 0, 0],
      [9, P.CHUNK_OFFSET_DATA, P.REPLY_FLAG_DONE, 300],
      [10, P.CHUNK_NONE, P.REPLY_FLAG_DONE, 0],
    ]);
    expect(r.seen.chunks[1]![1].payload.readUInt32BE(8)).toBe(200);
  }

  it('routes replies to their requests wherever the data events split', () => {
    for (const cut of [1, 3, 7, 16, 20, 21, 28, 333, stream.length]) {
      const r = requests();
      for (let at = 0; at < stream.length; at += cut) r.parser.push(stream.subarray(at, at + cut));
      expectAllRouted(r);
    }
  });

  it('lets the socket read a large read straight into its buffer (directDest, placed), as a socket would', () => {
    for (const cut of [1, 5, 64, 333]) {
      const r = requests();
      // The client's read loop: before each read, ask for a direct destination (reads of 100+ bytes still to come).
      let direct = 0;
      for (let at = 0; at < stream.length;) {
        const into = r.parser.directDest(100);
        const n = Math.min(cut, stream.length - at, into?.length ?? Infinity);
        if (into) {
          stream.copy(into, 0, at, at + n);
          r.parser.placed(n);
          direct += n;
        } else r.parser.push(stream.subarray(at, at + n));
        at += n;
      }
      expect(direct, `cut ${cut}`).toBeGreaterThan(0);
      expectAllRouted(r);
    }
    const { parser } = parserFor(new Map());
    expect(parser.directDest(1)).toBeUndefined();
    expect(() => parser.placed(1)).toThrow(/without a direct destination/);
  });

  it('rejects a bad magic, an unknown handle and data outside the read', () => {
    const bad = Buffer.alloc(16, 0x41);
    expect(() => parserFor(new Map()).parser.push(bad)).toThrow(/bad reply magic 0x41414141/);
    expect(() => parserFor(new Map()).parser.push(simple(3, 0))).toThrow(/unknown handle 3/);
    const outside = structured(1, P.REPLY_FLAG_DONE, P.CHUNK_OFFSET_DATA, offsetData(100, Buffer.alloc(10)));
    let err: unknown;
    try {
      parserFor(new Map([[1, { offset: 0, buffer: Buffer.alloc(50) }]])).parser.push(outside);
    } catch (e) {
      err = e;
    }
    expect(isP2vError(err, 'NBD')).toBe(true);
    expect((err as Error).message).toMatch(/outside the read at 0/);
  });

  it('refuses an oversized non-data chunk before buffering it', () => {
    const h = structured(1, 0, P.CHUNK_BLOCK_STATUS, Buffer.alloc(0));
    h.writeUInt32BE(0x7fffffff, 16);
    expect(() => parserFor(new Map([[1, null]])).parser.push(h)).toThrow(/oversized reply chunk/);
  });
});

describe('protocol codecs', () => {
  it('encodes a request header as the protocol lays it out', () => {
    const r = P.encodeRequest(P.CMD_READ, 0, 0x1234, 2 ** 40 + 5, 65536);
    expect(r.length).toBe(28);
    expect(r.readUInt32BE(0)).toBe(0x25609513);
    expect(r.readUInt16BE(6)).toBe(P.CMD_READ);
    expect(r.readBigUInt64BE(8)).toBe(0x1234n);
    expect(r.readBigUInt64BE(16)).toBe(BigInt(2 ** 40 + 5));
    expect(r.readUInt32BE(24)).toBe(65536);
  });

  it('encodes NBD_OPT_GO and SET_META_CONTEXT payloads', () => {
    const go = P.encodeGo('disk', [P.INFO_BLOCK_SIZE]);
    expect([...go]).toEqual([0, 0, 0, 4, 0x64, 0x69, 0x73, 0x6b, 0, 1, 0, 3]);
    const meta = P.encodeMetaContext('', ['base:allocation']);
    expect(meta.readUInt32BE(0)).toBe(0);
    expect(meta.readUInt32BE(4)).toBe(1);
    expect(meta.readUInt32BE(8)).toBe(15);
    expect(meta.subarray(12).toString()).toBe('base:allocation');
  });

  it('decodes block status and error chunks, and refuses sizes beyond 2^53', () => {
    const bs = Buffer.alloc(4 + 16);
    bs.writeUInt32BE(1, 0);
    bs.writeUInt32BE(4096, 4);
    bs.writeUInt32BE(3, 8);
    bs.writeUInt32BE(8192, 12);
    bs.writeUInt32BE(0, 16);
    expect(P.decodeBlockStatus(bs)).toEqual({
      context: 1,
      descriptors: [
        { length: 4096, status: 3 },
        { length: 8192, status: 0 },
      ],
    });
    expect(() => P.decodeBlockStatus(bs.subarray(0, 10))).toThrow(/malformed block status/);
    const err = Buffer.concat([
      Buffer.from([0, 0, 0, 5, 0, 3]),
      Buffer.from('bad'),
      Buffer.from([0, 0, 0, 0, 0, 0, 2, 0]),
    ]);
    expect(P.decodeErrorChunk(P.CHUNK_ERROR_OFFSET, err)).toEqual({ errno: 5, message: 'bad', offset: 512 });
    expect(P.errnoText(5)).toBe('EIO (input/output error)');
    const info = Buffer.alloc(12);
    info.writeBigUInt64BE(2n ** 60n, 2);
    expect(() => P.decodeInfo(info)).toThrow(/impossible export size/);
  });
});
