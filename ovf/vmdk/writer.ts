/**
 * writeStreamOptimized: a DiskContent as streamOptimized VMDK bytes, written
 * strictly front to back so the result can go straight into a pipe or a tar
 * entry. Layout:
 *
 *   header (gdOffset = GD_AT_END) · descriptor ·
 *   { grain marker + zlib data }* with one GT marker + grain table after the
 *   grains of each 512-grain span that has any · GD marker + grain directory ·
 *   footer marker + header (real gdOffset) · end-of-stream marker
 *
 * Grains are deflated in parallel (zlib's async API on the libuv threadpool,
 * or batches on worker threads) with a bounded in-flight window, and written
 * in order. Memory is bounded by the window: 2 × concurrency grains (batches
 * of 16 with workers) and their compressed copies.
 */
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';
import { deflate as deflateCb } from 'node:zlib';
import { GRAIN_SIZE, SECTOR_SIZE, type DiskContent } from '../types.js';
import { P2vError } from '../../lib/errors.js';
import { buildDescriptor, type AdapterType } from './descriptor.js';
import { DEFAULT_GRAIN_SECTORS, GD_AT_END, GTES_PER_GT, encodeSparseHeader, streamHeader } from './header.js';
import {
  MARKER_EOS,
  MARKER_FOOTER,
  MARKER_GD,
  MARKER_GT,
  encodeGrain,
  encodeMetadataMarker,
  encodeTable,
  roundUpToSector,
} from './marker.js';
import { assembleGrains } from './grain-assembler.js';
import { mapOrdered } from './ordered-map.js';
import { BATCH_GRAINS, chooseEngine, ZlibPool, batched, type ZlibEngine } from './zlib-pool.js';

const deflate = promisify(deflateCb);

export interface VmdkWriteOptions {
  /**
   * zlib level 0-9. Default 1: on our bench mix it writes within a few percent
   * of level 6's size at several times the speed (see bench/README.md), and
   * the export is CPU-bound on the source machine.
   */
  level?: number;
  /** Grains compressed in parallel (default: os.availableParallelism()). */
  concurrency?: number;
  /**
   * ddb.adapterType. Default 'lsilogic': what VMware's own OVF exports carry,
   * accepted by VMware, VirtualBox and qemu alike; the OVF descriptor names the
   * real controller anyway.
   */
  adapterType?: AdapterType;
  /** ddb.virtualHWVersion (default '4', the oldest, so any VMware product opens it). */
  hwVersion?: string;
  /** File name in the descriptor's extent line (default "disk.vmdk"). */
  fileName?: string;
  /** Where zlib runs; default: the libuv threadpool, or workers when concurrency exceeds its threads (zlib-pool.ts). */
  engine?: ZlibEngine;
  /** Called with the running total of disk data bytes consumed from `content.chunks`. */
  onProgress?: (inputBytesConsumed: number) => void;
}

export interface VmdkWriteStats {
  bytesOut: number;
  grainsWritten: number;
}

export const DEFAULT_LEVEL: number = 1;
/** Sparse VMDK tables hold 32-bit sector numbers: the file cannot pass 2 TiB. */
const MAX_SECTOR = 2 ** 32 - 1;
const GRAIN_SECTORS = DEFAULT_GRAIN_SECTORS;
const GT_SECTORS = (GTES_PER_GT * 4) / SECTOR_SIZE;

/** streamOptimized VMDK bytes for `content`; never seeks; stats are final when the iterator ends. */
export function writeStreamOptimized(
  content: DiskContent,
  opts: VmdkWriteOptions = {},
): AsyncIterable<Buffer> & { stats: VmdkWriteStats } {
  const stats: VmdkWriteStats = { bytesOut: 0, grainsWritten: 0 };
  const checked = checkOptions(content, opts);
  let started = false;
  return {
    stats,
    [Symbol.asyncIterator]() {
      if (started) throw new Error('writeStreamOptimized: the stream can be iterated only once');
      started = true;
      return generate(content, opts, checked, stats);
    },
  };
}

function checkOptions(content: DiskContent, opts: VmdkWriteOptions): { level: number; concurrency: number } {
  const level = opts.level ?? DEFAULT_LEVEL;
  if (!Number.isInteger(level) || level < 0 || level > 9)
    throw new P2vError('USAGE', `VMDK compression level must be 0-9, not ${level}`);
  const concurrency = opts.concurrency ?? availableParallelism();
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new P2vError('USAGE', `VMDK compression concurrency must be a positive integer, not ${concurrency}`);
  if (!Number.isSafeInteger(content.capacity) || content.capacity < 0) {
    throw new P2vError('IO', `disk capacity ${content.capacity} is not a valid byte count`);
  }
  return { level, concurrency };
}

async function* generate(
  content: DiskContent,
  opts: VmdkWriteOptions,
  { level, concurrency }: { level: number; concurrency: number },
  stats: VmdkWriteStats,
): AsyncGenerator<Buffer> {
  // A capacity that is not a whole number of sectors is rounded up: the tail reads as zeros.
  const capacitySectors = BigInt(Math.ceil(content.capacity / SECTOR_SIZE));
  const grainBytes = GRAIN_SIZE;
  const numGrains = Math.ceil(Number(capacitySectors) / GRAIN_SECTORS);
  const numGTs = Math.ceil(numGrains / GTES_PER_GT);

  const descriptor = Buffer.from(
    buildDescriptor({
      capacitySectors,
      fileName: opts.fileName ?? 'disk.vmdk',
      adapterType: opts.adapterType ?? 'lsilogic',
      hwVersion: opts.hwVersion ?? '4',
    }),
    'utf8',
  );
  const descriptorSectors = roundUpToSector(descriptor.length) / SECTOR_SIZE;
  let sector = 0; // where the next yielded byte lands, in sectors
  const emit = (b: Buffer): Buffer => {
    sector += b.length / SECTOR_SIZE;
    stats.bytesOut += b.length;
    return b;
  };
  const here = (what: string): number => {
    if (sector > MAX_SECTOR) {
      throw new P2vError(
        'POLICY',
        `the compressed VMDK passes 2 TiB while writing ${what}, the most a sparse VMDK can address`,
        {
          hint: 'split the disk or trim unused space before exporting',
        },
      );
    }
    return sector;
  };

  yield emit(encodeSparseHeader(streamHeader(capacitySectors, BigInt(descriptorSectors), GD_AT_END)));
  const descBuf = Buffer.alloc(descriptorSectors * SECTOR_SIZE);
  descriptor.copy(descBuf);
  yield emit(descBuf);

  const gd = new Uint32Array(numGTs);
  const gt = new Uint32Array(GTES_PER_GT);
  let gtIndex = -1;
  function* flushGT(): Generator<Buffer> {
    if (gtIndex < 0) return;
    yield emit(encodeMetadataMarker(MARKER_GT, GT_SECTORS));
    gd[gtIndex] = here('a grain table');
    yield emit(encodeTable(gt));
    gt.fill(0);
  }

  const grains = assembleGrains(content, grainBytes, opts.onProgress);
  const pool = (opts.engine ?? chooseEngine(concurrency)) === 'workers' ? new ZlibPool(concurrency) : null;
  const compressed: AsyncIterable<{ index: number; record: Buffer }[]> = pool
    ? mapOrdered(
        batched(grains, BATCH_GRAINS),
        async (batch) => {
          const out = await pool.run(
            'deflate',
            batch.map((g) => g.data),
            { level },
          );
          return batch.map((g, i) => {
            const z = out[i]!.data;
            if (!z) throw new Error(`deflate failed: ${out[i]!.error?.message}`);
            return { index: g.index, record: encodeGrain(BigInt(g.index * GRAIN_SECTORS), z) };
          });
        },
        concurrency * 2,
      )
    : mapOrdered(
        grains,
        async (g) => {
          const z = await deflate(g.data, { level, chunkSize: grainBytes + 1024 });
          return [{ index: g.index, record: encodeGrain(BigInt(g.index * GRAIN_SECTORS), z) }];
        },
        concurrency * 2,
      );
  try {
    for await (const batch of compressed) {
      for (const { index, record } of batch) {
        const t = Math.floor(index / GTES_PER_GT);
        if (t !== gtIndex) {
          yield* flushGT();
          gtIndex = t;
        }
        gt[index % GTES_PER_GT] = here(`grain ${index}`);
        stats.grainsWritten++;
        yield emit(record);
      }
    }
  } finally {
    await pool?.close();
  }
  yield* flushGT();

  const gdSectors = roundUpToSector(numGTs * 4) / SECTOR_SIZE;
  yield emit(encodeMetadataMarker(MARKER_GD, gdSectors));
  const gdOffset = here('the grain directory');
  yield emit(encodeTable(gd));
  yield emit(encodeMetadataMarker(MARKER_FOOTER, 1));
  yield emit(encodeSparseHeader(streamHeader(capacitySectors, BigInt(descriptorSectors), BigInt(gdOffset))));
  yield emit(encodeMetadataMarker(MARKER_EOS, 0));
}
