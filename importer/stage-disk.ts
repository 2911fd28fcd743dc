/**
 * Decode one disk file of the OVA into `<partial>/diskN.raw`, a sparse raw
 * file of the disk's capacity.
 *
 *  - streamOptimized VMDK (what p2v-export sends): grains are decoded as they
 *    arrive and written straight into the raw file; no VMDK is ever stored.
 *  - monolithicSparse VMDK, qcow2: the file is staged (sparsely) next to the
 *    raw file, checked (`qemu-img info` for stand-alone-ness, `qemu-img
 *    check`) and converted with `qemu-img convert -O raw`, then removed.
 *  - raw: the staged file is the disk.
 *  - ovf:compression="gzip" is inflated on the fly first.
 *
 * The format is sniffed from the first bytes, never taken from ovf:format
 * alone; a disk the descriptor calls a VMDK or qcow2 that sniffs as raw is
 * refused rather than imported as garbage.
 *
 * The capacity is the descriptor's; when the descriptor has none
 * (VirtualBox) it is the image's. A disagreement is an error, and so is a
 * capacity above --disk-size — found before any data byte is written.
 */
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { P2vError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { SECTOR_SIZE, type DataChunk, type OvfDisk, type OvfFile } from '../ovf/types.js';
import { readStreamOptimized, sniffDiskFormat } from '../ovf/vmdk/index.js';
import { gunzip, isGzip, peekHead, type ByteSource } from './byte-stream.js';
import { createDeviceSink, createRawFileSink, writeSparseFile } from './disk-sink.js';
import { checkDiskSize } from './policy.js';
import { checkImage, convertToRaw, inspectImage, type QemuFormat } from './qemu-img.js';
import type { StagedDisk } from './types.js';

export interface StageDiskOptions {
  /** The `.partial` work dir. */
  dir: string;
  /** Ganeti disk index. */
  index: number;
  disk: OvfDisk;
  file: OvfFile;
  maxDiskSize?: number;
  /** Further admission of the disk once its capacity is known (target device size); throws to refuse. */
  admitCapacity?: (capacity: number) => void;
  /** Decode a streamOptimized disk straight onto this device instead of a staged file. */
  device?: string;
  /** Called just before the device is first changed (zeroed), once every check has passed. */
  onDeviceWrite?: () => void;
  /** Sees every decoded chunk of a streamOptimized disk after it is written (the base's block map: base-map-tap.ts). */
  tap?: { start(capacity: number): Promise<void>; write(chunk: DataChunk): Promise<void> };
  logger: Logger;
}

/** Bytes looked at to tell formats apart (VMDK header + embedded descriptor). */
const HEAD_BYTES = 64 * 1024;
/** Ceiling on the non-data bytes (metadata) an image file may add to its capacity. */
const METADATA_ALLOWANCE = 64 * 1024 * 1024;

export function rawDiskName(index: number): string {
  return `disk${index}.raw`;
}

/** Descriptor capacity vs. image capacity: the image may only round up to a sector. */
export function checkCapacityAgrees(disk: OvfDisk, imageCapacity: number): number {
  if (disk.capacity === undefined) return imageCapacity;
  const rounded = Math.ceil(disk.capacity / SECTOR_SIZE) * SECTOR_SIZE;
  if (imageCapacity !== disk.capacity && imageCapacity !== rounded) {
    throw new P2vError(
      'BAD_OVF',
      `disk ${disk.diskId}: the descriptor says ${disk.capacity} bytes but the image holds ${imageCapacity}`,
      {
        hint: 'the OVF descriptor and the disk file do not belong together; export again',
      },
    );
  }
  return imageCapacity;
}

export async function stageDisk(content: ByteSource, opts: StageDiskOptions): Promise<StagedDisk> {
  const { disk, file, dir, index } = opts;
  const what = `disk ${disk.diskId} (${file.href})`;
  const target = join(dir, rawDiskName(index));
  const sizeCap = opts.maxDiskSize ?? disk.capacity;

  let { head, source } = await peekHead(content, HEAD_BYTES);
  // Only a declared compression is undone: a raw disk may start with any bytes.
  if (file.compression === 'gzip') {
    if (!isGzip(head))
      throw new P2vError('BAD_OVA', `${what} is marked gzip-compressed but is not gzip data`, {
        hint: 'export it again',
      });
    const inflated = gunzip(
      source,
      sizeCap === undefined ? Number.MAX_SAFE_INTEGER : sizeCap + METADATA_ALLOWANCE,
      what,
    );
    ({ head, source } = await peekHead(inflated, HEAD_BYTES));
  }
  if (head.length === 0)
    throw new P2vError('TRUNCATED', `${what} is empty`, { hint: 'the OVA was cut short; send it again' });

  const sniffed = sniffDiskFormat(head);
  if (sniffed === 'vmdk-streamOptimized') return decodeStreamOptimized(source, target, what, opts);
  if (sniffed === 'vmdk-other') {
    throw new P2vError('BAD_VMDK', `${what} is a VMDK subformat that is not self-contained`, {
      hint: 'export a streamOptimized or monolithicSparse VMDK',
    });
  }
  if (sniffed === 'unknown') {
    throw new P2vError(
      'BAD_OVA',
      `${what} is not a disk image format p2v-import takes (streamOptimized or monolithicSparse VMDK, qcow2, raw)`,
      {
        hint: 'convert the disk with qemu-img first',
      },
    );
  }
  const format: QemuFormat = sniffed === 'vmdk-monolithicSparse' ? 'vmdk' : sniffed === 'qcow2' ? 'qcow2' : 'raw';
  if (format === 'raw' && disk.format !== 'raw' && disk.format !== 'unknown') {
    const said = disk.format === 'qcow2' ? 'qcow2' : 'VMDK';
    throw new P2vError('BAD_VMDK', `${what} is not a ${said} image although the descriptor says so`, {
      hint: 'the OVA is corrupt; export it again',
    });
  }
  return stageViaQemuImg(source, format, target, what, opts);
}

async function decodeStreamOptimized(
  source: ByteSource,
  target: string,
  what: string,
  opts: StageDiskOptions,
): Promise<StagedDisk> {
  // The reader's own ceiling stays generous: the policy check right below
  // names the disk and the allowed size, still before any grain is read.
  // The reader proves the stream whole from its own grain tables and directory (ovf/vmdk ledger), whatever the
  // manifest says; only the end-of-stream marker may be missing, as qemu-img 7.x writes none.
  const vmdk = await readStreamOptimized(source, { allowMissingEndMarker: true });
  const capacity = checkCapacityAgrees(opts.disk, vmdk.capacity);
  checkDiskSize(opts.disk, capacity, opts.maxDiskSize);
  opts.admitCapacity?.(capacity);
  let sink;
  if (opts.device) {
    opts.onDeviceWrite?.();
    sink = await createDeviceSink(opts.device, capacity);
  } else {
    sink = await createRawFileSink(target, capacity);
  }
  try {
    await opts.tap?.start(capacity);
    for await (const chunk of vmdk.grains) {
      await sink.write(chunk);
      await opts.tap?.write(chunk);
    }
    await sink.finish();
  } catch (e) {
    await sink.abort();
    throw e;
  }
  opts.logger.debug(`${what}: ${sink.dataBytes} data bytes of ${capacity}`);
  if (opts.device)
    return {
      index: opts.index,
      diskId: opts.disk.diskId,
      path: opts.device,
      capacity,
      dataBytes: sink.dataBytes,
      direct: true,
    };
  return { index: opts.index, diskId: opts.disk.diskId, path: target, capacity, dataBytes: sink.dataBytes };
}

async function stageViaQemuImg(
  source: ByteSource,
  format: QemuFormat,
  target: string,
  what: string,
  opts: StageDiskOptions,
): Promise<StagedDisk> {
  const staged = format === 'raw' ? target : join(opts.dir, `disk${opts.index}.${format}`);
  const limit = opts.maxDiskSize ?? opts.disk.capacity;
  const length = await writeSparseFile(
    staged,
    source,
    limit === undefined ? Number.MAX_SAFE_INTEGER : limit + (format === 'raw' ? 0 : METADATA_ALLOWANCE),
    what,
  );
  let capacity: number;
  if (format === 'raw') {
    capacity = checkCapacityAgrees(opts.disk, length);
    checkDiskSize(opts.disk, capacity, opts.maxDiskSize);
    opts.admitCapacity?.(capacity);
  } else {
    capacity = checkCapacityAgrees(opts.disk, await inspectImage(staged, format, what));
    checkDiskSize(opts.disk, capacity, opts.maxDiskSize);
    opts.admitCapacity?.(capacity);
    await checkImage(staged, format, what);
    await convertToRaw(staged, format, target, what);
    await rm(staged, { force: true });
  }
  // What the sparse raw file really holds (qemu-img leaves zero runs as holes).
  const dataBytes = Math.min(capacity, (await stat(target)).blocks * 512);
  return { index: opts.index, diskId: opts.disk.diskId, path: target, capacity, dataBytes };
}
