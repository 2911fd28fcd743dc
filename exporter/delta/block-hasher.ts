/**
 * The delta's block digests on a worker thread (hash-worker.ts): while the
 * worker hashes one chunk's blocks, the main thread keeps taking the next
 * reads off the NBD socket, so the two costs of the final pass (reading the
 * overlay, digesting every block) overlap on two cores. Only for chunks in
 * a SharedArrayBuffer (the lent read pool of disk-content.ts); anything else,
 * or a worker that cannot start (the sources run without a build), is
 * hashed on the main thread as before.
 *
 *   const h = await startBlockHasher(blockSize); … digestBlocks(chunks, cap, bs, h?.hash); … await h?.close();
 */
import { Worker } from 'node:worker_threads';
import type { ChunkHasher } from '../../ovf/delta/index.js';
import type { HashReply, HashRequest } from './hash-worker.js';

export interface BlockHasher {
  hash: ChunkHasher;
  close(): Promise<void>;
}

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

let early: Promise<Worker | undefined> | undefined;

/**
 * Start the worker now, so that its start-up (50–80 ms of a thread booting
 * node) happens while the overlay starts and the disks are inspected, not
 * when the stream begins; startBlockHasher takes it. Unused, it does not
 * keep the process alive (unref).
 */
export function prestartBlockHasher(): void {
  early ??= spawnWorker();
}

export async function startBlockHasher(blockSize: number): Promise<BlockHasher | undefined> {
  const started = early ?? spawnWorker();
  early = undefined;
  const worker = await started;
  if (!worker) return undefined;
  const waiting = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();
  let failed: Error | undefined;
  worker.on('message', (r: HashReply) => {
    const w = waiting.get(r.id);
    waiting.delete(r.id);
    w?.resolve(Buffer.from(r.entries));
  });
  const fail = (e: Error) => {
    failed = e;
    for (const w of waiting.values()) w.reject(e);
    waiting.clear();
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`the block hashing worker exited (${code})`)));
  let next = 0;
  const ids = new WeakMap<SharedArrayBuffer, number>();
  let nextBuffer = 0;
  return {
    async hash(c) {
      const buffer = c.data.buffer;
      const blocks = Math.floor(c.data.length / blockSize);
      if (!(buffer instanceof SharedArrayBuffer) || blocks === 0) return undefined;
      if (failed) throw failed;
      const id = next++;
      let bufferId = ids.get(buffer);
      const first = bufferId === undefined;
      if (bufferId === undefined) ids.set(buffer, (bufferId = nextBuffer++));
      const req: HashRequest = {
        id,
        bufferId,
        ...(first ? { buffer } : {}),
        offset: c.data.byteOffset,
        blocks,
        blockSize,
      };
      return new Promise<Buffer>((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        worker.postMessage(req);
      });
    },
    async close() {
      worker.removeAllListeners('exit');
      await worker.terminate();
    },
  };
}
