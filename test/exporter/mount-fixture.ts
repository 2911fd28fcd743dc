/**
 * Shared by the mount, inspect and sparsify tests: a sample disk under an
 * overlay exposed with nbdfuse, and the leak check every test ends with (no
 * nbdkit/nbdfuse, loop device or mount left that belongs to the test dir).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { execa } from 'execa';
import { expect } from 'vitest';
import { openOverlay, type Overlay } from '../../exporter/overlay.js';
import { exposeOverlay, unescapeMountinfo, type ExposedDisk } from '../../exporter/disk-files.js';

/** Programs every mount-path test drives (the sample disk builder, nbdkit, nbdfuse, loops). */
export const MOUNT_PATH_PROGRAMS = [
  'nbdkit',
  'nbdfuse',
  'fusermount3',
  'losetup',
  'mount',
  'sfdisk',
  'blkid',
  'mkfs.ext4',
  'mkswap',
  'cpio',
  'debugfs',
];

export async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

export interface Exposed {
  overlay: Overlay;
  disk: ExposedDisk;
  size: number;
  close(): Promise<void>;
}

export async function overlayAndExpose(image: string, workDir: string): Promise<Exposed> {
  const overlay = await openOverlay(image, { workDir });
  try {
    const disk = await exposeOverlay(overlay, workDir);
    return {
      overlay,
      disk,
      size: (await stat(image)).size,
      async close() {
        await disk.close();
        await overlay.close();
      },
    };
  } catch (e) {
    await overlay.close();
    throw e;
  }
}

/** What of ours is still around under `dir`: processes, loop devices, mounts. */
export async function leftovers(dir: string): Promise<string[]> {
  const out: string[] = [];
  const ps = await execa('pgrep', ['-af', `(nbdkit|nbdfuse).*${dir}`], { reject: false });
  for (const l of String(ps.stdout).split('\n')) if (l.trim() && !l.includes('pgrep')) out.push(`process: ${l}`);
  const loops = await execa('losetup', ['-a'], { reject: false });
  for (const l of String(loops.stdout).split('\n')) if (l.includes(dir)) out.push(`loop: ${l}`);
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  for (const l of info.split('\n')) {
    const mp = unescapeMountinfo(l.split(' ')[4] ?? '');
    if (mp.startsWith(dir)) out.push(`mount: ${mp}`);
  }
  return out;
}

export async function expectNoLeftovers(dir: string): Promise<void> {
  expect(await leftovers(dir)).toEqual([]);
}

/** Extents of an NBD export that are holes or read as zero, from `nbdinfo --map`. */
export async function zeroRanges(uri: string): Promise<{ offset: number; length: number }[]> {
  const r = await execa('nbdinfo', ['--map', '--json', uri]);
  const map = JSON.parse(String(r.stdout)) as { offset: number; length: number; type: number }[];
  return map.filter((e) => (e.type & 2) !== 0).map((e) => ({ offset: e.offset, length: e.length }));
}

/** Bytes of [offset, offset+length) covered by the given ranges. */
export function covered(ranges: { offset: number; length: number }[], offset: number, length: number): number {
  let n = 0;
  for (const r of ranges) {
    const a = Math.max(r.offset, offset);
    const b = Math.min(r.offset + r.length, offset + length);
    if (b > a) n += b - a;
  }
  return n;
}

/** Leftovers above the overlay/nbdfuse layer (loop devices, guest mounts) while that layer is still open. */
export async function leftoversAboveFuse(dir: string): Promise<string[]> {
  return (await leftovers(dir)).filter(
    (l) => !l.startsWith('process: ') && !/^mount: .*\/p2v-fuse-[^/]+\/mnt$/.test(l),
  );
}
