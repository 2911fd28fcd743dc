/**
 * The big sparse disk of the peak-RSS runs: the bench image's data stripes
 * (bench/image.ts) copied, in order, onto a larger sparse file with evenly
 * spaced gaps, so every grain table and directory entry of a 20 GiB disk is
 * used while the data to compress stays what --size asked for. Memory that
 * grows with capacity rather than with data (grain directories, extent lists,
 * block-status maps) shows up here and nowhere else.
 */
import { open, writeFile } from 'node:fs/promises';
import { STRIPE, type ImageMap } from './image.js';

/** Capacity of the peak-RSS disk: the issues' "20 GiB disk". */
export const RSS_CAPACITY = 20 * 1024 ** 3;

/** Copy `base`'s extents from `baseRaw` onto a new sparse `capacity`-byte file at `path`; writes its map to `mapPath`. */
export async function makeSpreadImage(
  baseRaw: string,
  base: ImageMap,
  path: string,
  mapPath: string,
  capacity: number = RSS_CAPACITY,
): Promise<ImageMap> {
  const stripes = Math.floor(capacity / STRIPE);
  const stride = Math.max(1, Math.floor(stripes / Math.max(1, base.extents.length)));
  const extents: ImageMap['extents'] = [];
  const src = await open(baseRaw, 'r');
  try {
    const dst = await open(path, 'w');
    try {
      await dst.truncate(capacity);
      const buf = Buffer.allocUnsafe(STRIPE);
      for (const [i, e] of base.extents.entries()) {
        const at = i * stride * STRIPE + (e.offset % STRIPE);
        if (at + e.length > capacity) break;
        const { bytesRead } = await src.read(buf, 0, e.length, e.offset);
        await dst.write(buf, 0, bytesRead, at);
        extents.push({ offset: at, length: bytesRead });
      }
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
  const map = { capacity, extents };
  await writeFile(mapPath, JSON.stringify(map));
  return map;
}
