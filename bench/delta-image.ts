/**
 * A data disk for the delta bench and tests: one ext4 filesystem over
 * the whole disk (no partition table, no operating system, so p2v-export
 * sends it as it is, without mounting it: two exports of the same bytes are
 * the same bytes), holding files of pseudo-random content; and a way to
 * change some of those files through the kernel's ext4, as the machine's
 * own life would.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, truncate, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { run } from '../lib/run.js';

/** Pseudo-random bytes from a seed (incompressible, like most changed data). */
export function seeded(seed: string, n: number): Buffer {
  const out = Buffer.alloc(n);
  let block = createHash('sha256').update(seed).digest();
  for (let p = 0; p < n; p += 32) {
    block.copy(out, p, 0, Math.min(32, n - p));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

export interface DataDisk {
  path: string;
  size: number;
  files: { name: string; size: number }[];
}

/** `count` files of `fileSize` bytes each (a few sizes around it) on a `size`-byte ext4 disk. */
export async function makeDataDisk(path: string, size: number, count: number, fileSize: number): Promise<DataDisk> {
  const tree = await mkdtemp(join(dirname(path), '.tree-'));
  const files: DataDisk['files'] = [];
  try {
    for (let i = 0; i < count; i++) {
      const name = `d${i % 16}/f${i}.bin`;
      const n = Math.round(fileSize * (0.5 + ((i * 7919) % 100) / 100));
      await mkdir(join(tree, dirname(name)), { recursive: true });
      await writeFile(join(tree, name), seeded(`file-${i}`, n));
      files.push({ name, size: n });
    }
    await rm(path, { force: true });
    await writeFile(path, '');
    await truncate(path, size);
    await run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-E', 'root_owner=0:0', '-L', 'data', '-d', tree, path]);
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
  return { path, size, files };
}

/**
 * Rewrite every `every`-th file in place with new content of the same size
 * (through a loop device and the kernel's ext4), then unmount. Returns the
 * bytes written (`changeFilesMeasured` also gives them deflated at level 1,
 * p2v-export's default).
 */
export async function changeFiles(disk: DataDisk, every: number, round = 1): Promise<number> {
  return (await changeFilesMeasured(disk, every, round)).bytes;
}

export async function changeFilesMeasured(
  disk: DataDisk,
  every: number,
  round = 1,
): Promise<{ bytes: number; compressed: number; files: number }> {
  const mnt = await mkdtemp(join(dirname(disk.path), '.mnt-'));
  await run('mount', ['-o', 'loop', disk.path, mnt]);
  let bytes = 0;
  let compressed = 0;
  let files = 0;
  try {
    for (const [i, f] of disk.files.entries()) {
      if (i % every !== 0) continue;
      const content = seeded(`changed-${round}-${i}`, f.size);
      const fh = await open(join(mnt, f.name), 'r+');
      await fh.write(content, 0, f.size, 0);
      await fh.close();
      bytes += f.size;
      compressed += deflateSync(content, { level: 1 }).length;
      files++;
    }
  } finally {
    await run('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
  }
  return { bytes, compressed, files };
}
