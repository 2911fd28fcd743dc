/**
 * Fit-to-size (p2v-export --target-size): the shared vocabulary of the fit
 * modules. A fitted disk is never rebuilt by copying: its filesystems are
 * shrunk or grown where they lie in the copy-on-write overlay (XFS, which
 * cannot shrink, is recreated past the source's end, in space the overlay
 * offers beyond the source), and the stream reads the target disk through a
 * DiskLayout: each partition's target range maps to a range of the overlay,
 * the new partition table comes from small in-memory patches, and everything
 * else reads as zeros.
 */

/** How a partition's content may change size. */
export type FitKind =
  /** ext2/3/4: resize2fs shrinks and grows in place. */
  | 'ext'
  /** XFS: grows in place (xfs_growfs); a shrink recreates it past the source end and copies the files. */
  | 'xfs'
  /** btrfs: `btrfs filesystem resize` shrinks and grows in place. */
  | 'btrfs'
  /** Linux swap: holds nothing worth keeping; recreated at its new size with its UUID and label. */
  | 'swap'
  /** Anything else (vfat ESP, BIOS boot, LVM PV, unknown): copied as it is, same size. */
  | 'fixed';

export interface FitPartition {
  /** Partition number in the table (1-based; MBR logical partitions are 5+). */
  number: number;
  /** Byte offset and size on the source disk (= in the overlay). */
  start: number;
  size: number;
  kind: FitKind;
  /**
   * The smallest byte size the partition may take: the filesystem's used
   * data plus the margin (filesystems.ts), or `size` for 'fixed'. For swap,
   * the size it is recreated at when space is short (minimumSwap).
   */
  minSize: number;
  /** blkid TYPE, for messages. */
  fsType?: string;
  /**
   * MBR only: an extended partition (05, 0f, 85) is a container, not content:
   * its new start and size follow from its logical partitions (5+).
   */
  container?: boolean;
}

export interface FitDisk {
  /** Source disk size in bytes. */
  size: number;
  table: 'dos' | 'gpt';
  partitions: FitPartition[];
}

export type FitAction =
  /** Same size, same place. */
  | 'keep'
  /** Same size and content, another place on the target disk (no bytes move: the layout maps it). */
  | 'move'
  | 'shrink'
  | 'grow'
  /** Made anew at its new size (XFS shrink, swap): `overlayStart` is where the new one is built. */
  | 'recreate';

export interface PlannedPartition {
  number: number;
  kind: FitKind;
  fsType?: string;
  oldStart: number;
  oldSize: number;
  /** Where it starts and how long it is on the target disk. */
  newStart: number;
  newSize: number;
  /**
   * Where its bytes live in the overlay once the fit is done: `oldStart`, or
   * for a recreated XFS an offset at or past the source end (in `overlayGrowth`).
   * The overlay range [overlayStart, overlayStart + newSize) is the partition.
   */
  overlayStart: number;
  action: FitAction;
}

export interface DiskLayout {
  oldSize: number;
  newSize: number;
  table: 'dos' | 'gpt';
  /** In start order on the target disk. */
  partitions: PlannedPartition[];
  /**
   * Bytes past the source's end the overlay must offer (nbdkit truncate
   * filter under the cow filter): room for recreated filesystems and for a
   * partition that grows past the source's end.
   */
  overlayGrowth: number;
  /** What the plan could not do as asked, for the report (e.g. "no room to grow /dev/sda1: sda2 follows it"). */
  notes: string[];
  /**
   * MBR only: the extended partition, re-derived from its logical
   * partitions. It is kept apart from `partitions` because it has no content
   * of its own (its range holds the logical partitions and their EBRs): the
   * table needs its new place, nothing resizes or maps it.
   */
  extended?: PlannedExtended;
}

export interface PlannedExtended {
  number: number;
  oldStart: number;
  oldSize: number;
  newStart: number;
  newSize: number;
}

/** Bytes the stream serves from memory instead of the overlay: the new partition table sectors. */
export interface TablePatch {
  /** Offset on the TARGET disk. */
  offset: number;
  data: Buffer;
}

/** 1 MiB: partitions start on this boundary, as every current partitioning tool does. */
export const FIT_ALIGNMENT = 1024 * 1024;
/** A GPT's backup header and entry array at the end of the disk: 1 + 32 sectors of 512 bytes. */
export const GPT_TAIL_BYTES = 33 * 512;
