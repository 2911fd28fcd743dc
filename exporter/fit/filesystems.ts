/**
 * Fit-to-size: the operations on filesystems. Everything happens on loop
 * devices over the copy-on-write overlay (the source is never written):
 * e2fsck repairs, resizes, mkfs of a recreated XFS or swap all land in the
 * overlay.
 *
 *   fitMargin(usedBytes): number
 *   minimumSwap(oldSize): number
 *   measureFilesystem(fsType, device, workDir): Promise<FsMeasure>
 *   resizeInPlace(fsType, device, newSize, workDir): Promise<void>
 *   recreateXfs(oldDevice, newDevice, workDir): Promise<void>
 *   recreateSwap(device, { uuid?, label?, pageSize? }): Promise<void>
 *
 * fsType is blkid's TYPE. Devices are UNMOUNTED when these are called; the
 * ones that need a mount (XFS, btrfs) mount under workDir and unmount before
 * they return. For a grow, the caller attaches the loop device at least
 * newSize long (sizelimit max(old, new)). docs/design-fit.md "## Filesystems"
 * has the rules and the measured times.
 */
import { P2vError } from '../../lib/errors.js';
import { measureBtrfs, resizeBtrfs } from './fs-btrfs.js';
import { deviceBytes } from './fs-common.js';
import { measureExt, resizeExt } from './fs-ext.js';
import { minimumSwap } from './fs-swap.js';
import { growXfs, measureXfs } from './fs-xfs.js';

export { fitMargin } from './fs-common.js';
export { minimumSwap, recreateSwap, type SwapIdentity } from './fs-swap.js';
export { recreateXfs, XFS_MIN_SIZE } from './fs-xfs.js';

export interface FsMeasure {
  /** Bytes the filesystem holds (data and metadata, as df counts them). */
  usedBytes: number;
  /**
   * The smallest size the partition can take: the filesystem tool's own
   * minimum plus fitMargin(usedBytes), rounded up to 1 MiB, and never more
   * than the size it has now (keeping its size is always possible). For
   * swap: minimumSwap(size).
   */
  minSize: number;
}

const EXT = new Set(['ext2', 'ext3', 'ext4']);

function unsupported(fsType: string, what: string): P2vError {
  return new P2vError('FIXUP', `cannot ${what} a ${fsType || 'unknown'} filesystem`, {
    hint: 'this is a bug: the fit plan keeps such a partition at its size',
  });
}

export async function measureFilesystem(fsType: string, device: string, workDir: string): Promise<FsMeasure> {
  if (EXT.has(fsType)) return measureExt(device);
  if (fsType === 'xfs') return measureXfs(device, workDir);
  if (fsType === 'btrfs') return measureBtrfs(device, workDir);
  if (fsType === 'swap') return { usedBytes: 0, minSize: minimumSwap(await deviceBytes(device)) };
  throw unsupported(fsType, 'measure');
}

/**
 * Shrink or grow the filesystem on `device` to newSize bytes where it lies:
 * ext (shrink and grow), btrfs (shrink and grow), XFS (grow only: a smaller
 * XFS is recreated). The filesystem ends up at newSize rounded down to its
 * block size.
 */
export async function resizeInPlace(fsType: string, device: string, newSize: number, workDir: string): Promise<void> {
  if (EXT.has(fsType)) return resizeExt(device, newSize);
  if (fsType === 'btrfs') return resizeBtrfs(device, newSize, workDir);
  if (fsType === 'xfs') return growXfs(device, newSize, workDir);
  throw unsupported(fsType, 'resize');
}
