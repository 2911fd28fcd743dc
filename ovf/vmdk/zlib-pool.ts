/**
 * ZlibPool: zlib on worker threads, a batch of grains per message: the
 * alternative to Node's async zlib (a stream object and a threadpool round
 * trip per grain). A worker inflates or deflates 16 grains per message with
 * the sync API. Results come back per item, errors included, so the caller
 * can say which grain is bad.
 *
 * The worker is inline source (eval) so the same code runs from dist/ and
 * from the TypeScript sources under vitest. Workers are unref'd: a pool that
 * is never closed does not keep the process alive.
 */
import { Worker } from 'node:worker_threads';

export type ZlibOp = 'inflate' | 'deflate';
/** Where zlib runs: Node's async zlib per grain on the libuv threadpool, or worker threads fed batches of grains. */
export type ZlibEngine = 'workers' | 'threadpool';
/**
 * The writer's engine for up to `threadpoolSize()` parallel jobs. Deflate
 * dwarfs the per-call cost, so the threadpool matches workers in CPU per byte
 * (bench/README.md) at half the peak RSS (no V8 isolate per worker), which
 * matters on the source machine running from a live image in RAM.
 */
export const DEFAULT_ENGINE: ZlibEngine = 'threadpool';

/** libuv threadpool threads (UV_THREADPOOL_SIZE, default 4). */
export function threadpoolSize(): number {
  const n = Number(process.env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : 4;
}

/** The threadpool cannot use more cores than it has threads: beyond that, workers. */
export function chooseEngine(concurrency: number): ZlibEngine {
  return concurrency <= threadpoolSize() ? DEFAULT_ENGINE : 'workers';
}
/** Grains per worker message: enough to amortise the message, few enough to keep every worker fed. */
export const BATCH_GRAINS = 16;

export interface ZlibItemResult {
  data?: Buffer;
  /** zlib's error code (e.g. Z_DATA_ERROR, ERR_BUFFER_TOO_LARGE) and message. */
  error?: { code: string | null; message: string };
}

/*
 * Memory handling, measured on the reader (bench/README.md): a fresh 1 MiB
 * ArrayBuffer per batch (packed input, concatenated output) lands on pages
 * the process has not touched yet, and on these VMs first touches made the
 * kernel's copy into the page cache the biggest cost of an import. So the
 * packed input travels to the worker and back and is reused, and each
 * output keeps the buffer zlib made for it (malloc recycles those) and is
 * transferred, not copied.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const zlib = require('node:zlib');
parentPort.on('message', (m) => {
  const src = Buffer.from(m.input, 0, m.inputBytes);
  const outs = [];
  const offsets = [];
  const lengths = [];
  const errors = [];
  const transfer = [m.input];
  let off = 0;
  for (const len of m.lengths) {
    const piece = src.subarray(off, off + len);
    off += len;
    try {
      // chunkSize above one grain: the output comes in a single piece, no concatenation.
      let o =
        m.op === 'deflate'
          ? zlib.deflateSync(piece, { level: m.level, chunkSize: m.chunk })
          : zlib.inflateSync(piece, { maxOutputLength: m.max, chunkSize: m.chunk });
      // Transfer only a buffer this output owns and mostly fills; copy the rest
      // (small outputs may sit in Buffer's shared pool, which must stay here).
      if (o.byteOffset !== 0 || o.buffer.byteLength > 2 * o.length + 4096 || transfer.includes(o.buffer)) {
        o = new Uint8Array(o);
      }
      transfer.push(o.buffer);
      outs.push(o.buffer);
      offsets.push(o.byteOffset);
      lengths.push(o.length);
      errors.push(null);
    } catch (e) {
      outs.push(null);
      offsets.push(0);
      lengths.push(-1);
      errors.push({ code: e && e.code ? String(e.code) : null, message: String(e && e.message) });
    }
  }
  parentPort.postMessage({ id: m.id, input: m.input, outs, offsets, lengths, errors }, transfer);
});
`;

interface Pending {
  resolve: (r: ZlibItemResult[]) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

interface Reply {
  id: number;
  /** The packed input, handed back for reuse. */
  input: ArrayBuffer;
  outs: (ArrayBuffer | null)[];
  offsets: number[];
  lengths: number[];
  errors: ({ code: string | null; message: string } | null)[];
}

/** Packed inputs kept for reuse: one per batch in flight is enough. */
const MAX_SPARE_INPUTS = 16;

export class ZlibPool {
  private readonly slots: Slot[] = [];
  private readonly spareInputs: ArrayBuffer[] = [];
  private nextId = 0;
  private closed = false;

  constructor(private readonly size: number) {}

  private start(): void {
    for (let i = 0; i < this.size; i++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      worker.unref();
      const slot: Slot = { worker, pending: new Map() };
      worker.on('message', (m: Reply) => {
        if (this.spareInputs.length < MAX_SPARE_INPUTS) this.spareInputs.push(m.input);
        const p = slot.pending.get(m.id);
        if (!p) return;
        slot.pending.delete(m.id);
        p.resolve(
          m.lengths.map((len, j) => {
            const out = m.outs[j];
            if (len < 0 || !out) return { error: m.errors[j] ?? { code: null, message: 'unknown zlib error' } };
            return { data: Buffer.from(out, m.offsets[j], len) };
          }),
        );
      });
      const fail = (e: Error) => {
        for (const p of slot.pending.values()) p.reject(e);
        slot.pending.clear();
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`zlib worker exited (status ${code})`)));
      this.slots.push(slot);
    }
  }

  /** A packed-input buffer of at least `bytes`, reused when one is free. */
  private inputBuffer(bytes: number): ArrayBuffer {
    const i = this.spareInputs.findIndex((b) => b.byteLength >= bytes);
    if (i >= 0) return this.spareInputs.splice(i, 1)[0]!;
    // Round up so later batches of a similar size fit the same buffer.
    return new ArrayBuffer(Math.max(bytes, 1024 * 1024));
  }

  /** Inflate (capped at maxOutputLength per item) or deflate (at level) each input. */
  run(op: ZlibOp, inputs: Buffer[], opt: { level?: number; maxOutputLength?: number }): Promise<ZlibItemResult[]> {
    if (this.closed) return Promise.reject(new Error('ZlibPool is closed'));
    if (this.slots.length === 0) this.start();
    let slot = this.slots[0]!;
    for (const s of this.slots) if (s.pending.size < slot.pending.size) slot = s;
    const total = inputs.reduce((a, b) => a + b.length, 0);
    const input = this.inputBuffer(total);
    const packed = new Uint8Array(input, 0, total);
    let off = 0;
    for (const b of inputs) {
      packed.set(b, off);
      off += b.length;
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage(
        {
          id,
          op,
          level: opt.level ?? 6,
          max: opt.maxOutputLength ?? 0,
          chunk: Math.max(opt.maxOutputLength ?? 0, ...inputs.map((b) => b.length)) + 1024,
          input,
          inputBytes: total,
          lengths: inputs.map((b) => b.length),
        },
        [input],
      );
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.spareInputs.length = 0;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

/** Group a stream into arrays of at most `max` items. */
export async function* batched<T>(source: AsyncIterable<T>, max: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of source) {
    batch.push(item);
    if (batch.length >= max) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}
