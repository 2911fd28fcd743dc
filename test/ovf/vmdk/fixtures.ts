/**
 * Helpers for the VMDK tests: sparse raw images built from a list of data
 * extents, DiskContent sources with awkward chunking, and stream plumbing.
 */
import { open, writeFile, readFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { DataChunk, DiskContent } from '../../../ovf/types.js';

export interface Extent {
  offset: number;
  length: number;
  /** 'random' (incompressible), 'text' (compressible) or 'zero' (explicit zeros that must come out as holes). */
  fill: 'random' | 'text' | 'zero';
}

function textBytes(n: number, seed: number): Buffer {
  const words = [
    'ganeti',
    'instance',
    'disk',
    'grain',
    'kernel',
    'initrd',
    'fstab',
    'virtio',
    'export',
    'node',
    'cluster',
    'the',
  ];
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  let i = 0;
  while (i < n) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    i += out.write(words[x % words.length]! + (x & 16 ? '\n' : ' '), i);
  }
  return out;
}

/** Write a sparse raw image of `capacity` bytes holding `extents`; returns the extents' bytes for later comparison. */
export async function makeImage(path: string, capacity: number, extents: Extent[]): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.truncate(capacity);
    for (const [i, e] of extents.entries()) {
      const data =
        e.fill === 'random'
          ? randomBytes(e.length)
          : e.fill === 'text'
            ? textBytes(e.length, i + 1)
            : Buffer.alloc(e.length);
      await fh.write(data, 0, data.length, e.offset);
    }
  } finally {
    await fh.close();
  }
}

/** Deterministic chunk sizes that never line up with sectors or grains. */
export function awkwardSizes(seed = 7): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return 1 + (x % 150_001);
  };
}

/**
 * DiskContent reading `path` in `regions` (default: the whole file), cut into
 * chunks by `nextSize`; chunk buffers are reused after each pull to prove the
 * writer copies what it keeps.
 */
export function fileContent(
  path: string,
  capacity: number,
  nextSize: () => number,
  regions?: { offset: number; length: number }[],
): DiskContent {
  async function* chunks(): AsyncGenerator<DataChunk> {
    const fh = await open(path, 'r');
    const scratch = Buffer.alloc(200_000);
    try {
      for (const r of regions ?? [{ offset: 0, length: capacity }]) {
        let pos = r.offset;
        const end = r.offset + r.length;
        while (pos < end) {
          const n = Math.min(nextSize(), end - pos, scratch.length);
          const { bytesRead } = await fh.read(scratch, 0, n, pos);
          yield { offset: pos, data: scratch.subarray(0, bytesRead) };
          scratch.fill(0xa5); // reuse the buffer: a writer that kept a view would now see garbage
          pos += bytesRead;
        }
      }
    } finally {
      await fh.close();
    }
  }
  return { capacity, chunks: chunks() };
}

export async function writeAll(path: string, stream: AsyncIterable<Buffer>): Promise<void> {
  const fh = await open(path, 'w');
  try {
    for await (const b of stream) await fh.write(b);
  } finally {
    await fh.close();
  }
}

/** Apply DataChunks to a fresh sparse file of `capacity` bytes. */
export async function writeChunks(path: string, capacity: number, chunks: AsyncIterable<DataChunk>): Promise<number> {
  const fh = await open(path, 'w');
  let n = 0;
  try {
    await fh.truncate(capacity);
    for await (const c of chunks) {
      await fh.write(c.data, 0, c.data.length, c.offset);
      n++;
    }
  } finally {
    await fh.close();
  }
  return n;
}

/** The file's bytes in odd-sized pieces, as a socket or tar entry would hand them over. */
export async function* fileStream(path: string, highWaterMark = 9_973): AsyncGenerator<Buffer> {
  for await (const b of createReadStream(path, { highWaterMark })) yield b as Buffer;
}

export async function* bufferStream(b: Buffer, piece = 4_099): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += piece) yield b.subarray(i, i + piece);
}

export { readFile, writeFile };
