/**
 * What the filesystem operations of the fit share: the one margin rule, the
 * size arithmetic, the programs' Debian packages, and a scoped mount.
 *
 *   fitMargin(usedBytes): number            free room every shrunk filesystem keeps
 *   roundUpMiB(bytes) / roundDownTo(bytes, unit)
 *   needFsProgram(program): Promise<void>   MISSING_PROGRAM naming the package
 *   withMount(device, fsType, workDir, opts, body)
 *   deviceBytes(device): Promise<number>
 */
import { mkdtemp, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { requireProgram } from '../../lib/run.js';
import { mountFilesystem } from '../mount.js';
import { sourceSize } from '../source-check.js';

export const MiB = 1024 * 1024;

/** The least free room a shrunk filesystem keeps: the guest must still boot, log and update. */
export const MIN_MARGIN = 64 * MiB;
/** …and at least this share of what it holds, so a full-ish filesystem is not left at 100 %. */
export const MARGIN_SHARE = 0.1;

/**
 * Free room a fitted filesystem keeps beyond its used data:
 * max(64 MiB, 10 % of usedBytes), rounded up to a whole MiB. The only margin
 * rule of the fit (docs/design-fit.md, "## Filesystems").
 */
export function fitMargin(usedBytes: number): number {
  return roundUpMiB(Math.max(MIN_MARGIN, usedBytes * MARGIN_SHARE));
}

export function roundUpMiB(bytes: number): number {
  return Math.ceil(bytes / MiB) * MiB;
}

export function roundDownTo(bytes: number, unit: number): number {
  return Math.floor(bytes / unit) * unit;
}

/**
 * Debian packages of the filesystem tools (lib/run.ts PACKAGE_OF does not
 * list them yet; the lead may move these there).
 */
/** Every program, or MISSING_PROGRAM naming its Debian package (lib/run's PACKAGE_OF). */
export async function needFsProgram(...programs: string[]): Promise<void> {
  for (const program of programs) await requireProgram(program);
}

/** Size of a block device (a loop device: its --sizelimit). */
export async function deviceBytes(device: string): Promise<number> {
  await needFsProgram('blockdev');
  return sourceSize(device);
}

/**
 * Mount `device` on a fresh directory under workDir for the length of
 * `body`, then unmount and remove the directory (also on error; the mount is
 * registered with lib/exit-actions by exporter/mount.ts for signals).
 */
export async function withMount<T>(
  device: string,
  fsType: string,
  workDir: string,
  opts: { readOnly?: boolean; options?: string[] },
  body: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(workDir, `p2v-fit-${fsType}-`));
  try {
    const fs = await mountFilesystem(device, dir, fsType, opts);
    try {
      return await body(dir);
    } finally {
      await fs.unmount();
    }
  } finally {
    // rmdir, never rm -r: if the unmount failed, the filesystem must not be emptied through it.
    await rmdir(dir).catch(() => undefined);
  }
}

/** Used bytes as the mounted filesystem reports them (statfs: what df shows as used). */
export async function statfsUsed(dir: string): Promise<number> {
  const { statfs } = await import('node:fs/promises');
  const s = await statfs(dir);
  return (s.blocks - s.bfree) * s.bsize;
}

/** Free bytes of the mounted filesystem (statfs f_bfree: root may fill all of it). */
export async function statfsFree(dir: string): Promise<number> {
  const { statfs } = await import('node:fs/promises');
  const s = await statfs(dir);
  return s.bfree * s.bsize;
}
