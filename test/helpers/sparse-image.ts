/**
 * writeSparseImage: a new file of `size` bytes that is a hole except for
 * random (so never all-zero) data at each [offset, length] of `pieces`.
 */
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';

export async function writeSparseImage(path: string, size: number, pieces: [number, number][]): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.truncate(size);
    for (const [off, len] of pieces) await fh.write(randomBytes(len), 0, len, off);
  } finally {
    await fh.close();
  }
}
