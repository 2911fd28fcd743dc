/**
 * GrainAssembler: the one place where disk chunks of any size and alignment
 * become whole grains. Chunks may start or end inside a grain, span many
 * grains, or leave gaps (holes); the last grain may be cut short by the
 * capacity. Out come the grains holding any non-zero byte, in ascending order,
 * each a fresh full-size buffer (zero-padded) that the caller owns: sources
 * may reuse their buffers once the next chunk is pulled.
 */
import type { DiskContent } from '../types.js';
import { P2vError } from '../../lib/errors.js';

export interface Grain {
  /** Grain number: byte offset / grain size. */
  index: number;
  /** Exactly one grain of bytes. */
  data: Buffer;
}

const zeroCache = new Map<number, Buffer>();

function zerosOf(size: number): Buffer {
  let z = zeroCache.get(size);
  if (!z) zeroCache.set(size, (z = Buffer.alloc(size)));
  return z;
}

/** True when every byte is zero (memcmp against a shared zero grain). */
export function isAllZero(b: Buffer): boolean {
  if (b.length === 0) return true;
  if (b[0] !== 0 || b[b.length - 1] !== 0) return false;
  const z = zerosOf(Math.max(b.length, 65536));
  return b.equals(z.subarray(0, b.length));
}

export async function* assembleGrains(
  content: DiskContent,
  grainBytes: number,
  onConsumed?: (bytes: number) => void,
): AsyncGenerator<Grain> {
  const { capacity } = content;
  let pending: Buffer | null = null;
  let pendingIndex = -1;
  let nextOffset = 0;
  let consumed = 0;
  for await (const { offset, data } of content.chunks) {
    if (!Number.isSafeInteger(offset) || offset < nextOffset) {
      throw new P2vError(
        'IO',
        `disk data chunk at byte ${offset} is out of order (previous chunk ended at byte ${nextOffset})`,
        {
          hint: 'this is a bug in the disk reader; report it with the command line used',
        },
      );
    }
    if (offset + data.length > capacity) {
      throw new P2vError(
        'IO',
        `disk data chunk at byte ${offset} (${data.length} bytes) runs past the disk's capacity of ${capacity} bytes`,
        {
          hint: 'the disk changed size while it was being read; read it again from a stable source',
        },
      );
    }
    nextOffset = offset + data.length;
    let pos = 0;
    while (pos < data.length) {
      const abs = offset + pos;
      const index = Math.floor(abs / grainBytes);
      const within = abs - index * grainBytes;
      const n = Math.min(grainBytes - within, data.length - pos);
      if (pending && pendingIndex !== index) {
        if (!isAllZero(pending)) yield { index: pendingIndex, data: pending };
        pending = null;
      }
      const piece = data.subarray(pos, pos + n);
      if (n === grainBytes) {
        if (!isAllZero(piece)) yield { index, data: Buffer.from(piece) };
      } else if (pending || !isAllZero(piece)) {
        if (!pending) {
          pending = Buffer.alloc(grainBytes);
          pendingIndex = index;
        }
        piece.copy(pending, within);
      }
      pos += n;
    }
    consumed += data.length;
    onConsumed?.(consumed);
  }
  if (pending && !isAllZero(pending)) yield { index: pendingIndex, data: pending };
}
