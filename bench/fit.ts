/**
 * Fit bench (issue 16): what `--target-size` costs on top of a plain export
 * of the same disk, in one run, through the real p2v-export CLI:
 *  - a data disk (MBR, one ext4 filesystem over the whole disk) holding files
 *    for about a fifth of its size (½ random, ½ text, bench/image.ts's mix);
 *  - plain: `p2v-export --disk IMG -o OUT.ova`;
 *  - fitted: the same with `--target-size` half the disk (resize2fs shrink,
 *    new table, layout stream): target ≤ 1.5 × the plain time;
 *  - XFS, measured apart: the same files on XFS, fitted (XFS cannot shrink:
 *    made anew and its files copied), against its own plain export;
 *  - qemu-img convert of the raw disk to a streamOptimized VMDK, as the
 *    reference for what a plain copy costs here.
 * Ratios are plain / fitted (> 1 would mean fitting is free); the target is
 * 1 / 1.5.
 */
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { randomFillSync } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../lib/run.js';
import {
  bestOf,
  cpuText,
  formatBytes,
  runMeasured,
  type Bench,
  type BenchContext,
  type BenchResult,
} from './harness.js';

const MiB = 1024 * 1024;
// 1 / 1.5, rounded so the tables print it plainly (fitted ≤ 1.4993 × plain).
const FIT_TARGET = 0.667;
const EXPORT = join(dirname(fileURLToPath(import.meta.url)), '../../bin/p2v-export.js');

/** A disk image of `size` bytes: MBR, one partition at 1 MiB holding `fs` with about size/5 of files. */
async function makeFitImage(ctx: BenchContext, path: string, size: number, fs: 'ext4' | 'xfs'): Promise<number> {
  await run('truncate', ['-s', String(size), path]);
  await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', path], { input: 'start=2048, type=83\n' });
  const dev = String(
    (await run('losetup', ['--find', '--show', '-o', String(MiB), '--sizelimit', String(size - MiB), path])).stdout,
  ).trim();
  const mnt = join(ctx.workDir, `mnt-${fs}`);
  let files = 0;
  try {
    await run(fs === 'ext4' ? 'mkfs.ext4' : 'mkfs.xfs', fs === 'ext4' ? ['-q', dev] : ['-q', '-f', dev]);
    await mkdir(mnt, { recursive: true });
    await run('mount', [dev, mnt]);
    try {
      const chunk = Buffer.alloc(4 * MiB);
      const text = Buffer.from(
        'the ganeti instance kernel initramfs of and to in is that for it as was with\n'.repeat(1 << 16),
      );
      for (let written = 0, i = 0; written < size / 5; i++, written += chunk.length) {
        if (i % 2) randomFillSync(chunk);
        else text.copy(chunk, 0, 0, chunk.length);
        await writeFile(join(mnt, `file-${i}`), chunk);
        files++;
      }
    } finally {
      await run('umount', [mnt]);
    }
  } finally {
    await run('losetup', ['-d', dev]);
  }
  return files;
}

async function exportOnce(ctx: BenchContext, image: string, extra: string[]) {
  const out = join(ctx.workDir, 'out.ova');
  await rm(out, { force: true });
  const r = await runMeasured('node', [EXPORT, '--disk', image, '--progress', 'none', '-q', ...extra, '-o', out]);
  const bytes = (await stat(out)).size;
  await rm(out);
  return { ...r, bytes };
}

export const fitBench: Bench = {
  name: 'fit',
  describe: 'p2v-export --target-size (shrink to half) vs a plain p2v-export of the same disk (ext4; XFS apart)',
  async run(ctx) {
    const size = Math.max(1024 * MiB, Math.floor(ctx.size / MiB) * MiB);
    const half = `${Math.floor(size / 2 / MiB)}M`;
    const results: BenchResult[] = [];
    for (const fs of ['ext4', 'xfs'] as const) {
      const image = join(ctx.workDir, `${fs}.raw`);
      const files = await makeFitImage(ctx, image, size, fs);
      ctx.log(`${fs} image: ${formatBytes(size)}, ${files} files of 4 MiB (½ random, ½ text)`);
      const plain = await bestOf(ctx.repeat, () => exportOnce(ctx, image, []));
      ctx.log(`plain export: ${plain.seconds.toFixed(2)} s, ${cpuText(plain)}, OVA ${formatBytes(plain.bytes)}`);
      const fitted = await bestOf(ctx.repeat, () => exportOnce(ctx, image, ['--target-size', half]));
      ctx.log(
        `--target-size ${half}: ${fitted.seconds.toFixed(2)} s, ${cpuText(fitted)}, OVA ${formatBytes(fitted.bytes)}`,
      );
      let reference = '';
      if (fs === 'ext4') {
        const q = join(ctx.workDir, 'q.vmdk');
        const qr = await bestOf(ctx.repeat, () =>
          runMeasured('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', image, q]),
        );
        await rm(q, { force: true });
        reference = `; qemu-img convert of the raw disk: ${qr.seconds.toFixed(2)} s`;
        ctx.log(`qemu-img → streamOptimized vmdk: ${qr.seconds.toFixed(2)} s, ${cpuText(qr)}`);
      }
      results.push({
        name: fs === 'ext4' ? 'shrink to half (ext4: resize2fs)' : 'shrink to half (XFS: recreated, files copied)',
        ours: `${fitted.seconds.toFixed(2)} s fitted`,
        theirs: `${plain.seconds.toFixed(2)} s plain export`,
        ratio: plain.seconds / fitted.seconds,
        ...(fs === 'ext4' ? { target: FIT_TARGET } : {}),
        note: `ratio = plain / fitted; target: fitted ≤ 1.5 × plain (ratio ≥ ${FIT_TARGET.toFixed(2)})${reference}`,
      });
      await rm(image);
    }
    return results;
  },
};
