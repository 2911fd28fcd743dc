/**
 * The worker thread of block-hasher.ts: the entries of whole blocks of a
 * shared buffer (1 byte ZERO, or 1 byte DATA + SHA-256), so the exporter's
 * main thread keeps taking the overlay's bytes off the socket meanwhile.
 * Only this file runs in the worker; it imports nothing of the project's.
 */
import * as crypto from 'node:crypto';
import { parentPort } from 'node:worker_threads';

/**
 * A request: `blocks` whole blocks of `blockSize` at `offset` in shared
 * buffer number `bufferId`; `buffer` comes with the first request naming it
 * only (passing a SharedArrayBuffer costs more than hashing a small chunk).
 */
export interface HashRequest {
  id: number;
  bufferId: number;
  buffer?: SharedArrayBuffer;
  offset: number;
  blocks: number;
  blockSize: number;
}

/** The answer: 33 bytes per block, the block map's entry encoding padded to a fixed size (tag, then digest or zeros). */
export interface HashReply {
  id: number;
  entries: ArrayBuffer;
}

const zeros = Buffer.alloc(4 * 1024 * 1024);

// As ovf/delta/format.ts `sha256` (this file imports nothing of the project's): the one-shot form where node has it.
const sha256: (data: Buffer) => Buffer =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('sha256', data, 'buffer')
    : (data) => crypto.createHash('sha256').update(data).digest();

const buffers = new Map<number, SharedArrayBuffer>();

parentPort?.on('message', (r: HashRequest) => {
  if (r.buffer) buffers.set(r.bufferId, r.buffer);
  const src = Buffer.from(buffers.get(r.bufferId)!, r.offset, r.blocks * r.blockSize);
  const entries = new ArrayBuffer(r.blocks * 33);
  const out = Buffer.from(entries);
  const zero = zeros.subarray(0, r.blockSize);
  for (let i = 0; i < r.blocks; i++) {
    const block = src.subarray(i * r.blockSize, (i + 1) * r.blockSize);
    if (block.equals(zero)) continue; // tag 0: all zeros
    out[i * 33] = 1;
    sha256(block).copy(out, i * 33 + 1);
  }
  const reply: HashReply = { id: r.id, entries };
  parentPort!.postMessage(reply, [entries]);
});
