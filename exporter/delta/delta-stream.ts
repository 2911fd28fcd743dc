/**
 * The stream stage of a delta export (docs/design-delta.md): like
 * ova-stream.ts, but each disk travels as a p2v delta member (the blocks
 * whose digest differs from the base map, and zero runs where the base has
 * data the new disk no longer has) instead of a streamOptimized VMDK. The
 * descriptor is the full export's, each disk's ovf:format naming the base
 * and its digest; the manifest covers every member as for a full OVA.
 */
import { onExit, type ExitHandle } from '../../lib/exit-actions.js';
import type { Progress } from '../../lib/progress.js';
import { buildDescriptor } from '../../ovf/descriptor/index.js';
import { writeOva } from '../../ovf/ova/index.js';
import {
  deltaFormatUri,
  DIGEST_CHUNKS_HELD,
  digestBlocks,
  writeDeltaMember,
  type DeltaStats,
} from '../../ovf/delta/index.js';
import { type MachineDescription, type OvfDisk, type OvfFile } from '../../ovf/types.js';
import type { OverlayDiskContent } from '../disk-content.js';
import type { FittedDisk } from '../fit/index.js';
import { openStreamContent } from '../ova-stream.js';
import type { Overlay } from '../overlay.js';
import type { ExportOutput } from '../outputs/types.js';
import { checkBaseFits, checkBaseMap, type BaseMapSource } from './base-map.js';
import { startBlockHasher } from './block-hasher.js';

/**
 * Chunk size of a streamed delta: small, so the stager receives and applies
 * records while the exporter is still digesting (one 64 MiB chunk held a
 * whole 3 MB delta until the end, and the stager's apply came after it);
 * each chunk costs a 512-byte tar header and a manifest line.
 */
export const DELTA_CHUNK_SIZE = 256 * 1024;

export interface DeltaStreamOptions {
  name: string;
  /** The machine as a full export would describe it (files and disks are filled in here). */
  machine: (files: OvfFile[], disks: OvfDisk[]) => MachineDescription;
  baseMap: BaseMapSource;
  /** --target-size: disks read through their fitted layout (a delta covers the disks as streamed). */
  fitted?: (FittedDisk | undefined)[];
  compressLevel?: number;
  chunkSize?: number;
  meter: (totalData: number) => Progress;
}

export interface DeltaDiskReport {
  source: string;
  capacity: number;
  dataBytes: number;
  /** Blocks sent with data, blocks sent as zeros, of `blocks`. */
  sentBlocks: number;
  zeroBlocks: number;
  blocks: number;
}

export interface DeltaStreamResult {
  disks: DeltaDiskReport[];
  bytesWritten: number;
  blockSize: number;
}

export async function streamDelta(
  overlays: Overlay[],
  output: ExportOutput,
  opts: DeltaStreamOptions,
  connections: ExitHandle[],
): Promise<DeltaStreamResult> {
  const header = await checkBaseMap(opts.baseMap);
  let meter: Progress | undefined;
  const doneByDisk = overlays.map(() => 0);
  const contents: OverlayDiskContent[] = [];
  for (const [i, ov] of overlays.entries()) {
    // Lent chunks: the digester looks at each block once and copies only the changed ones (delta-member.ts).
    const c = await openStreamContent(ov, opts.fitted?.[i], {
      lend: DIGEST_CHUNKS_HELD,
      onProgress: (d) => {
        doneByDisk[i] = d;
        meter?.update(doneByDisk.reduce((a, b) => a + b, 0));
      },
    });
    connections.push(onExit(`close NBD connection to ${ov.source}`, () => c.close()));
    contents.push(c);
  }
  checkBaseFits(
    header,
    opts.name,
    contents.map((c) => c.capacity),
    opts.baseMap.where,
  );
  meter = opts.meter(contents.reduce((s, c) => s + c.dataBytes, 0));
  meter.update(0);
  const map = await opts.baseMap.open();
  const bs = header.blockSize;
  // Digests on a second thread while this one reads (block-hasher.ts); undefined: hashed here.
  const hasher = await startBlockHasher(bs);
  connections.push(onExit('stop the block hashing worker', async () => hasher?.close()));
  const members = contents.map((c, i) =>
    writeDeltaMember(
      {
        index: i,
        capacity: c.capacity,
        blockSize: bs,
        base: header.name,
        baseDigest: header.disks[i]!.digest,
      },
      digestBlocks(c.chunks, c.capacity, bs, hasher?.hash),
      map.runs(i),
      { level: opts.compressLevel },
    ),
  );
  const disks: OvfDisk[] = contents.map((c, i) => ({
    diskId: `vmdisk${i + 1}`,
    fileRef: `file${i + 1}`,
    capacity: c.capacity,
    populatedSize: c.dataBytes,
    format: 'unknown',
    formatUri: deltaFormatUri({ base: header.name, blockSize: bs, baseDigest: header.disks[i]!.digest }),
    controller: 'scsi',
    unit: i,
  }));
  const result = await output.send((sink) =>
    writeOva({
      descriptorName: `${opts.name}.ovf`,
      descriptor: (files) => buildDescriptor(opts.machine(files, disks), { chunked: sink.mode === 'stream' }),
      files: members.map((m, i) => ({ id: `file${i + 1}`, href: `${opts.name}-disk${i + 1}.delta`, content: m.bytes })),
      ...(sink.mode === 'file' ? { mode: 'file', output: sink.path } : { mode: 'stream', output: sink.stream }),
      chunkSize: opts.chunkSize ?? DELTA_CHUNK_SIZE,
    }),
  );
  await map.end();
  meter.finish();
  return {
    blockSize: bs,
    bytesWritten: result.bytesWritten,
    disks: contents.map((c, i) => report(overlays[i]!.source, c, members[i]!.stats, bs)),
  };
}

function report(source: string, c: OverlayDiskContent, s: DeltaStats, bs: number): DeltaDiskReport {
  return {
    source,
    capacity: c.capacity,
    dataBytes: c.dataBytes,
    sentBlocks: s.dataBlocks,
    zeroBlocks: s.zeroBlocks,
    blocks: Math.ceil(c.capacity / bs),
  };
}
