/**
 * coalesceChunks: merge runs of adjacent DataChunks (the reader yields one per
 * grain) into runs of up to `maxBytes`, so a consumer writing to a disk or
 * file issues one positioned writev per run instead of one write per 64 KiB.
 * Buffers are passed through, not copied.
 */
import type { DataChunk } from '../types.js';

export interface ChunkRun {
  offset: number;
  buffers: Buffer[];
  length: number;
}

export async function* coalesceChunks(
  chunks: AsyncIterable<DataChunk>,
  maxBytes = 1024 * 1024,
): AsyncGenerator<ChunkRun> {
  let run: ChunkRun | null = null;
  for await (const c of chunks) {
    if (run && run.offset + run.length === c.offset && run.length + c.data.length <= maxBytes) {
      run.buffers.push(c.data);
      run.length += c.data.length;
      continue;
    }
    if (run) yield run;
    run = { offset: c.offset, buffers: [c.data], length: c.data.length };
  }
  if (run) yield run;
}
