/**
 * `p2v-export --inspect --base-map FILE` (or `--ssh … --delta`): what the
 * final pass would send and how long the machine would be down, before
 * anything is sent (docs/design-delta.md, "Projecting a final pass").
 *
 *   projectDelta(overlays, baseMap, opts): Promise<DeltaProjection>
 *
 * It does the delta's own work on the overlays as they are now: every data
 * block read and digested, compared with the base map's entry; a sample of
 * the changed blocks deflated at the export's level for the compression
 * ratio (all of them up to SAMPLE_BLOCKS, then one in two, one in four, …,
 * so a huge change costs no more than reading it). Bytes to send = changed
 * data × ratio + the records' and the OVA's own bytes. Downtime = this run's
 * overlay and inspection time + its read-and-digest time (the final pass
 * reads the same blocks) + deflating
 * the changed data at the rate measured on the sample + the transfer at the
 * link rate (given, or an assumed 1 Gbit/s). Fixups and the trim run only on
 * the final pass: their changes are not in the projection (`assumes` says so).
 */
import { deflateBlock, DIGEST_CHUNKS_HELD, EntryCursor, digestBlocks } from '../../ovf/delta/index.js';
import { P2vError } from '../../lib/errors.js';
import type { OverlayDiskContent } from '../disk-content.js';
import type { Overlay } from '../overlay.js';
import { openStreamContent } from '../ova-stream.js';
import { checkBaseFits, checkBaseMap, type BaseMapSource } from './base-map.js';
import { startBlockHasher, type BlockHasher } from './block-hasher.js';

export interface DiskProjection {
  index: number;
  capacity: number;
  blocks: number;
  /** Blocks whose data differs from the base's (sent as DATA records). */
  changedBlocks: number;
  /** Blocks that are zeros now and hold data in the base (ZERO runs). */
  zeroedBlocks: number;
  /** Bytes read and digested (the overlay's data extents). */
  dataBytes: number;
}

export interface DeltaProjection {
  base: string;
  baseState: 'complete' | 'interrupted';
  blockSize: number;
  disks: DiskProjection[];
  /** Raw bytes of the changed blocks. */
  changedBytes: number;
  /** Deflated / raw over the sampled changed blocks (1 when nothing changed). */
  compressionRatio: number;
  sampledBlocks: number;
  /** Projected bytes on the wire (the whole OVA stream). */
  bytesToSend: number;
  /** This run's read and digest of every disk. */
  readSeconds: number;
  linkBytesPerSecond: number;
  linkRateGiven: boolean;
  /** Projected seconds from the final pass's start to the last byte sent (fixups and trim not included). */
  downtimeSeconds: number;
  /** What the estimate takes for granted, in words. */
  assumes: string[];
}

/** Changed blocks deflated in full before the sample thins out (64 MiB at 4 KiB blocks). */
export const SAMPLE_BLOCKS = 16384;
/** 1 Gbit/s: the link rate assumed when none is given. */
export const ASSUMED_LINK = 125_000_000;
/** Bytes of a DATA record's head and of a ZERO record (ovf/delta/delta-member.ts). */
const DATA_HEAD = 13;
const ZERO_RECORD = 17;
/** Member magic, header line and END record; the OVA's descriptor, manifest and tar headers (measured: under 10 KiB for one disk). */
const MEMBER_FIXED = 256;
const OVA_FIXED = 16 * 1024;

function mapSize(which: 'fewer' | 'more'): P2vError {
  return new P2vError('BAD_OVA', `block map: ${which} blocks than the disk`, {
    hint: 'fetch the map again with p2v-import --block-map NAME',
  });
}

export interface ProjectOptions {
  name: string;
  compressLevel?: number;
  /** Link rate in bytes per second (--link-rate); absent: ASSUMED_LINK. */
  linkBytesPerSecond?: number;
  /** Seconds this run spent before reading (overlay, inspection): the final pass spends them too. */
  secondsBefore?: number;
}

export async function projectDelta(
  overlays: Overlay[],
  baseMap: BaseMapSource,
  opts: ProjectOptions,
): Promise<DeltaProjection> {
  const header = await checkBaseMap(baseMap);
  const level = opts.compressLevel ?? 1;
  const bs = header.blockSize;
  const t0 = process.hrtime.bigint();
  let deflateNs = 0n;
  let sampledRaw = 0;
  let sampledPacked = 0;
  let sampled = 0;
  let stride = 1;
  let changedSeen = 0;
  let zeroRuns = 0;
  const disks: DiskProjection[] = [];
  const contents: OverlayDiskContent[] = [];
  let hasher: BlockHasher | undefined;
  try {
    for (const ov of overlays) contents.push(await openStreamContent(ov, undefined, { lend: DIGEST_CHUNKS_HELD }));
    checkBaseFits(
      header,
      opts.name,
      contents.map((c) => c.capacity),
      baseMap.where,
    );
    const map = await baseMap.open();
    // Digested as the final pass digests (block-hasher.ts), so its time is the final pass's.
    hasher = await startBlockHasher(bs);
    for (const [i, c] of contents.entries()) {
      const d: DiskProjection = {
        index: i,
        capacity: c.capacity,
        blocks: Math.ceil(c.capacity / bs),
        changedBlocks: 0,
        zeroedBlocks: 0,
        dataBytes: c.dataBytes,
      };
      const cur = new EntryCursor(map.runs(i)[Symbol.asyncIterator]());
      let lastZero = -2;
      for await (const batch of digestBlocks(c.chunks, c.capacity, bs, hasher?.hash)) {
        for (const b of batch) {
          for (let k = 0; k < b.count; k++) {
            if (!cur.has() && !(await cur.fill())) throw mapSize('fewer');
            if (cur.takeSame(b.entry)) continue;
            if (b.entry === null) {
              d.zeroedBlocks++;
              if (b.index + k !== lastZero + 1) zeroRuns++;
              lastZero = b.index + k;
              continue;
            }
            d.changedBlocks++;
            // The sample thins out as it grows: every block, then one in 2, 4, … once SAMPLE_BLOCKS were taken at each rate.
            if (changedSeen++ % stride === 0) {
              const s = process.hrtime.bigint();
              sampledPacked += deflateBlock(b.data!, level).length;
              deflateNs += process.hrtime.bigint() - s;
              sampledRaw += b.data!.length;
              if (++sampled % SAMPLE_BLOCKS === 0) stride *= 2;
            }
          }
        }
      }
      if (await cur.fill()) throw mapSize('more');
      disks.push(d);
    }
    await map.end();
  } finally {
    for (const c of contents) await c.close();
    await hasher?.close();
  }
  const readSeconds = Number(process.hrtime.bigint() - t0 - deflateNs) / 1e9;
  const changedBlocks = disks.reduce((n, d) => n + d.changedBlocks, 0);
  const changedBytes = changedBlocks * bs;
  const ratio = sampledRaw > 0 ? sampledPacked / sampledRaw : 1;
  const bytesToSend = Math.round(
    changedBytes * ratio + changedBlocks * DATA_HEAD + zeroRuns * ZERO_RECORD + disks.length * MEMBER_FIXED + OVA_FIXED,
  );
  const deflateRate = deflateNs > 0n ? sampledRaw / (Number(deflateNs) / 1e9) : Infinity;
  const link = opts.linkBytesPerSecond ?? ASSUMED_LINK;
  const before = opts.secondsBefore ?? 0;
  const downtimeSeconds = before + readSeconds + changedBytes / deflateRate + bytesToSend / link;
  return {
    base: header.name,
    baseState: header.state,
    blockSize: bs,
    disks,
    changedBytes,
    compressionRatio: ratio,
    sampledBlocks: sampled,
    bytesToSend,
    readSeconds,
    linkBytesPerSecond: link,
    linkRateGiven: opts.linkBytesPerSecond !== undefined,
    downtimeSeconds,
    assumes: [
      'the disks as they are now: the final pass runs fixups and the trim first, which change more blocks (fixups) or free some (trim)',
      `the overlay and inspection as long as in this run (${before.toFixed(1)} s), reading and digesting as fast (${readSeconds.toFixed(1)} s), deflating at the rate measured on ${sampled} sampled blocks`,
      `a link of ${(link / 1e6).toFixed(0)} MB/s${opts.linkBytesPerSecond === undefined ? ' (assumed: give --link-rate)' : ''}, and the stager applying as fast as it receives`,
      'the machine is down from the final pass’s start: add the shutdown and the boot of the live image',
    ],
  };
}

/** The projection as text, after the inspection's. */
export function formatProjection(p: DeltaProjection): string {
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  const lines = [
    '',
    `final pass against the ${p.baseState} base of ${p.base} (${p.blockSize}-byte blocks):`,
    ...p.disks.map(
      (d) =>
        `  disk ${d.index}: ${d.changedBlocks} of ${d.blocks} blocks changed, ${d.zeroedBlocks} now zeros; ${mb(d.dataBytes)} read`,
    ),
    `  bytes to send:    ${mb(p.bytesToSend)} (${mb(p.changedBytes)} changed × ${p.compressionRatio.toFixed(3)} deflated, from ${p.sampledBlocks} sampled blocks)`,
    `  downtime:         ${p.downtimeSeconds.toFixed(1)} s (read and digest ${p.readSeconds.toFixed(1)} s, link ${(p.linkBytesPerSecond / 1e6).toFixed(0)} MB/s${p.linkRateGiven ? '' : ' assumed'})`,
    '  assumes:',
    ...p.assumes.map((a) => `    - ${a}`),
  ];
  return lines.join('\n') + '\n';
}
