/**
 * The synthetic disk the benches share. In every 8 MiB stripe: 2 MiB of
 * random bytes (incompressible: encrypted or already-compressed files),
 * 2 MiB of text-like bytes (words and newlines, compressing about 3:1 like
 * logs, configs and source), 4 MiB of hole (free space the exporter has
 * trimmed). So ¼ random, ¼ text, ½ holes, spread over the whole disk so every
 * grain table is used.
 */
import { open, writeFile } from 'node:fs/promises';
import { randomFillSync } from 'node:crypto';

export const STRIPE = 8 * 1024 * 1024;
const PART = STRIPE / 4;

export interface ImageMap {
  capacity: number;
  /** Data extents (everything else is a hole). */
  extents: { offset: number; length: number }[];
}

function textBlock(n: number, seed: number): Buffer {
  const words =
    'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her'.split(
      ' ',
    );
  const rare =
    'ganeti instance kernel initramfs virtio systemd journal filesystem partition bootloader nbdkit export import cluster'.split(
      ' ',
    );
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  let i = 0;
  while (i < n) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const w = x & 7 ? words[x % words.length]! : rare[x % rare.length]! + (x % 1000);
    i += b.write(w + ((x >>> 8) % 11 === 0 ? '\n' : ' '), i);
  }
  return b;
}

/** Write the image (a sparse file of `size` bytes, rounded down to whole stripes) and its map. */
export async function makeBenchImage(path: string, mapPath: string, size: number): Promise<ImageMap> {
  const capacity = Math.max(STRIPE, Math.floor(size / STRIPE) * STRIPE);
  const texts = Array.from({ length: 8 }, (_, i) => textBlock(PART, i + 1));
  const random = Buffer.alloc(PART);
  const extents: ImageMap['extents'] = [];
  const fh = await open(path, 'w');
  try {
    await fh.truncate(capacity);
    for (let s = 0; s * STRIPE < capacity; s++) {
      const at = s * STRIPE;
      randomFillSync(random);
      await fh.write(random, 0, PART, at);
      await fh.write(texts[s % texts.length]!, 0, PART, at + PART);
      extents.push({ offset: at, length: 2 * PART });
    }
  } finally {
    await fh.close();
  }
  const map = { capacity, extents };
  await writeFile(mapPath, JSON.stringify(map));
  return map;
}
