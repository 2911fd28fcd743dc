/**
 * The delta's block digests on worker threads (hash-worker.ts): while the
 * workers hash a chunk's blocks, the main thread keeps taking the next reads
 * off the NBD socket. Hashing is the final pass's largest cost (a 4 KiB
 * SHA-256 per block, 0.18 CPU-s per 200 MB on the bench machine) and one
 * thread of it is the stream's pace, so a chunk's blocks are cut in equal
 * runs, one per worker, with a worker per core but one (the main thread and
 * nbdkit need the rest: on the 2-core bench machine a second worker made the
 * final pass slower, 1.16–1.30 s against 1.10–1.20 s). Only for chunks in a
 * SharedArrayBuffer (the lent read pool of disk-content.ts); anything else,
 * or workers that cannot start (the sources run without a build), is hashed
 * on the main thread as before.
 *
 *   const h = await startBlockHasher(blockSize); … digestBlocks(chunks, cap, bs, h?.hash); … await h?.close();
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ChunkHasher } from '../../ovf/delta/index.js';
import type { HashReply, HashRequest } from './hash-worker.js';

export interface BlockHasher {
  hash: ChunkHasher;
  close(): Promise<void>;
}

/** More threads than this gain nothing: the socket reads of the main thread are the next limit. */
const MAX_WORKERS = 4;

/** A worker per core but one, at least one. */
export function defaultHashWorkers(): number {
  return Math.max(1, Math.min(availableParallelism() - 1, MAX_WORKERS));
}

/** A run shorter than this goes to one worker whole: a message costs more than hashing a few blocks. */
const MIN_RUN_BLOCKS = 64;

async function spawnWorker(): Promise<Worker | undefined> {
  try {
    const worker = new Worker(new URL('./hash-worker.js', import.meta.url));
    await new Promise<void>((resolve, reject) => {
      worker.once('online', resolve);
      worker.once('error', reject);
    });
    worker.unref();
    return worker;
  } catch {
    return undefined;
  }
}

async function spawnWorkers(n: number): Promise<Worker[]> {
  const started = await Promise.all(Array.from({ length: n }, spawnWorker));
  return started.filter((w): w is Worker => w !== undefined);
}

let early: Promise<Worker[]> | undefined;

/**
 * Start the workers now, so that their start-up (50–80 ms of a thread
 * booting node, each) happens while the overlay starts and the disks are
 * inspected, not when the stream begins; startBlockHasher takes them.
 * Unused, they do not keep the process alive (unref).
 */
export function prestartBlockHasher(): void {
  early ??= spawnWorkers(defaultHashWorkers());
}

/** One worker: its requests in flight, and the shared buffers it has been sent. */
class HashThread {
  private readonly waiting = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();
  private readonly known = new Set<number>();
  private next = 0;
  private failed: Error | undefined;

  constructor(readonly worker: Worker) {
    worker.on('message', (r: HashReply) => {
      const w = this.waiting.get(r.id);
      this.waiting.delete(r.id);
      w?.resolve(Buffer.from(r.entries));
    });
    worker.on('error', (e) => this.fail(e));
    worker.on('exit', (code) => this.fail(new Error(`a block hashing worker exited (${code})`)));
  }

  private fail(e: Error): void {
    this.failed = e;
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }

  /** Entries of `blocks` blocks at `offset` in the shared buffer numbered `bufferId`. */
  entries(bufferId: number, buffer: SharedArrayBuffer, offset: number, blocks: number, blockSize: number) {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.next++;
    // A SharedArrayBuffer is passed once per worker: passing it costs more than hashing a small run.
    const first = !this.known.has(bufferId);
    this.known.add(bufferId);
    const req: HashRequest = { id, bufferId, ...(first ? { buffer } : {}), offset, blocks, blockSize };
    return new Promise<Buffer>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage(req);
    });
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}

/** `workers`: how many threads (tests); by default the prestarted ones, or defaultHashWorkers(). */
export async function startBlockHasher(blockSize: number, workers?: number): Promise<BlockHasher | undefined> {
  const started = workers === undefined && early ? early : spawnWorkers(workers ?? defaultHashWorkers());
  if (workers === undefined) early = undefined;
  const threads = (await started).map((w) => new HashThread(w));
  if (threads.length === 0) return undefined;
  const ids = new WeakMap<SharedArrayBuffer, number>();
  let nextBuffer = 0;
  // Where the next chunk's first run goes: chunks too small to cut take turns.
  let turn = 0;
  return {
    async hash(c) {
      const buffer = c.data.buffer;
      const blocks = Math.floor(c.data.length / blockSize);
      if (!(buffer instanceof SharedArrayBuffer) || blocks === 0) return undefined;
      let bufferId = ids.get(buffer);
      if (bufferId === undefined) ids.set(buffer, (bufferId = nextBuffer++));
      const runs = Math.max(1, Math.min(threads.length, Math.floor(blocks / MIN_RUN_BLOCKS)));
      const parts: Promise<Buffer>[] = [];
      for (let r = 0, from = 0; r < runs; r++) {
        const to = Math.floor(((r + 1) * blocks) / runs);
        const t = threads[(turn + r) % threads.length]!;
        parts.push(t.entries(bufferId, buffer, c.data.byteOffset + from * blockSize, to - from, blockSize));
        from = to;
      }
      turn = (turn + runs) % threads.length;
      return runs === 1 ? parts[0]! : Buffer.concat(await Promise.all(parts));
    },
    async close() {
      await Promise.all(threads.map((t) => t.close()));
    },
  };
}
