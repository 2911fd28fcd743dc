/**
 * The fitted disk as the stream sees it: a DiskContent of `layout.newSize`
 * bytes read through the layout. Each partition's target range reads its
 * overlay range; the region before the first partition (the MBR gap, where
 * grub's core.img lives, or the BIOS boot area) reads the overlay where it
 * is; the table patches win over whatever lies under them; everything else
 * is zeros. It is the same block status + pipelined read machinery as the
 * plain export (exporter/disk-content.ts), with another map.
 */
import {
  openMappedContent,
  type ContentMap,
  type DiskContentOptions,
  type OverlayDiskContent,
} from '../disk-content.js';
import { P2vError } from '../../lib/errors.js';
import type { DiskLayout, TablePatch } from './types.js';

/** Where the target's bytes come from, for a given overlay size (which must hold the layout's growth). */
export function layoutContentMap(layout: DiskLayout, patches: readonly TablePatch[], overlaySize: number): ContentMap {
  const needed = layout.oldSize + layout.overlayGrowth;
  if (overlaySize < needed)
    throw new P2vError('NBD', `the overlay has ${overlaySize} bytes, and the fitted disk reads up to ${needed}`, {
      hint: 'the overlay must be opened with room for the fit (overlayGrowth)',
    });
  const starts = layout.partitions.map((p) => p.newStart);
  if (layout.extended) starts.push(layout.extended.newStart);
  // The first partition keeps its start (plan.ts): the boot area before it is the source's.
  const lead = starts.length ? Math.min(...starts) : 0;
  const ranges = layout.partitions.map((p) => ({ target: p.newStart, length: p.newSize, source: p.overlayStart }));
  if (lead > 0) ranges.push({ target: 0, length: Math.min(lead, layout.oldSize), source: 0 });
  return {
    capacity: layout.newSize,
    ranges: ranges.sort((a, b) => a.target - b.target),
    patches: [...patches].sort((a, b) => a.offset - b.offset),
  };
}

/**
 * Connect to the overlay's NBD server on `socket` and describe the fitted
 * disk; the same interface as openDiskContent (capacity = layout.newSize).
 */
export function openLayoutContent(
  socket: string,
  layout: DiskLayout,
  patches: TablePatch[],
  opts: DiskContentOptions = {},
): Promise<OverlayDiskContent> {
  return openMappedContent(socket, (overlaySize) => layoutContentMap(layout, patches, overlaySize), opts);
}
