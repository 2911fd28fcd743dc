/**
 * Receiving a delta (docs/design-delta.md): admit it against the machine's
 * base before any data is written, then apply each delta disk either in
 * place, on the base's own disk taken into the import's `.partial` dir under
 * an undo journal (base-take.ts: when no output shares the file), or onto a
 * copy (reflink where the filesystem has it, else a sparse copy made while
 * the exporter digests). Either way a failed delta leaves the base as it
 * was. Applying also writes the result's block map, and refuses the result
 * unless its whole-disk digest is the one the exporter stated.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { P2vError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import {
  entryOf,
  parseDeltaFormatUri,
  readDeltaMember,
  ResultMap,
  zeros,
  type DeltaFormat,
} from '../ovf/delta/index.js';
import type { MachineDescription, OvfDisk } from '../ovf/types.js';
import {
  baseDiskName,
  baseMapName,
  checkBaseDisk,
  copySparse,
  ensureBaseMaps,
  MapFileWriter,
  mapFileBytes,
  openBase,
  type Base,
} from './base.js';
import type { TakenBase, WriteRun } from './base-take.js';
import { rawDiskName } from './stage-disk.js';
import type { StagedDisk } from './types.js';

/** The delta each disk names, or undefined for a full import (every disk must agree). */
export function deltaOf(m: MachineDescription): (DeltaFormat | undefined)[] | undefined {
  const formats = m.disks.map((d) => parseDeltaFormatUri(d.formatUri));
  if (formats.every((f) => f === undefined)) return undefined;
  if (formats.some((f) => f === undefined))
    throw new P2vError('BAD_OVF', 'some disks of this OVA are deltas and some are not', {
      hint: 'send a full export (p2v-export without --base-map)',
    });
  return formats;
}

function wrongBase(message: string, hint: string): P2vError {
  return new P2vError('USAGE', `wrong base: ${message}`, { hint });
}

const HINT_REMAP =
  'fetch the current map (p2v-import --block-map NAME) and export again with --base-map, or send a full export';

/**
 * Check a delta against the base of `instanceName` before any data: same
 * machine, same disks and sizes, same block size, and the base disks the map
 * described (their digests). Returns the base.
 */
export async function admitDelta(
  staging: string,
  m: MachineDescription,
  formats: DeltaFormat[],
  instanceName: string,
): Promise<Base> {
  const named = formats[0]!.base;
  if (formats.some((f) => f.base !== named)) throw wrongBase('the disks name different bases', 'send a full export');
  if (named !== instanceName)
    throw wrongBase(
      `the delta was made against ${named}'s base, and this import is ${instanceName}`,
      `export again with --base-map from p2v-import --block-map ${instanceName}, or send a full export`,
    );
  const base = await ensureBaseMaps(await openBase(staging, named));
  if (base.disks.length !== m.disks.length)
    throw wrongBase(`the base of ${named} has ${base.disks.length} disk(s), the delta ${m.disks.length}`, HINT_REMAP);
  for (const [i, d] of m.disks.entries()) {
    const b = base.disks[i]!;
    const f = formats[i]!;
    if (d.capacity !== b.capacity)
      throw wrongBase(
        `disk ${i} is ${d.capacity} bytes, its base ${b.capacity}`,
        'the disk layout changed: send a full export',
      );
    if (f.blockSize !== base.blockSize)
      throw wrongBase(`disk ${i} uses ${f.blockSize}-byte blocks, the base ${base.blockSize}`, HINT_REMAP);
    if (f.baseDigest !== b.digest)
      throw wrongBase(
        `disk ${i} was made from a map that does not match the base of ${named} (changed since)`,
        HINT_REMAP,
      );
  }
  return base;
}

/**
 * The copies of the base disks a delta is applied to, in the import's
 * `.partial` dir (reflink where the filesystem has it, sparse otherwise:
 * only the data extents are read). Started as soon as the descriptor is
 * admitted, so the copy runs while the exporter is still digesting. A base
 * disk written to while it was copied (an output sharing its inode) is
 * refused: the result's digest is computed from the base's map, so the copy
 * must be the bytes that map describes.
 */
export async function copyBaseDisks(base: Base, dir: string): Promise<void> {
  for (const d of base.disks) {
    const copy = join(dir, rawDiskName(d.index));
    await copySparse(join(base.dir, baseDiskName(d.index)), copy);
    await checkBaseDisk(base, d.index);
    // Flushed now, while the exporter digests: the sync after applying then writes only the delta's blocks.
    const fh = await open(copy, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }
}

export interface ApplyDeltaOptions {
  /** The `.partial` work dir, holding the base disk (taken, or a copy: copyBaseDisks). */
  dir: string;
  index: number;
  disk: OvfDisk;
  base: Base;
  format: DeltaFormat;
  logger: Logger;
  /** The base's disks taken into `dir` (written in place under a journal), or undefined: `dir` holds copies. */
  taken?: TakenBase;
}

/**
 * Coalesced writes: consecutive blocks become one run (one positional write,
 * not one per 4 KiB block), and runs are handed on in batches, so a taken
 * base (base-take.ts) journals and flushes once per batch, not once per run.
 */
class BatchWriter {
  private runs: WriteRun[] = [];
  private batched = 0;
  private run: WriteRun | undefined;
  written = 0;
  constructor(private readonly sink: (runs: WriteRun[]) => Promise<void>) {}
  async add(offset: number, data: Buffer): Promise<void> {
    const r = this.run;
    if (r && offset === r.offset + r.length && r.length < WRITE_RUN) {
      r.parts.push(data);
      r.length += data.length;
    } else {
      if (r) await this.close(r);
      this.run = { offset, length: data.length, parts: [data] };
    }
  }
  private async close(r: WriteRun): Promise<void> {
    this.runs.push(r);
    this.batched += r.length;
    this.run = undefined;
    if (this.batched >= WRITE_BATCH) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.run) this.runs.push(this.run);
    this.run = undefined;
    if (this.runs.length === 0) return;
    const runs = this.runs;
    this.runs = [];
    this.batched = 0;
    await this.sink(runs);
    this.written += runs.reduce((a, r) => a + r.length, 0);
  }
}

/** Bytes per coalesced write (zero runs are written in pieces of this size too). */
const WRITE_RUN = 1024 * 1024;
/** Bytes of runs per batch: what one journal flush covers when the base is taken. */
const WRITE_BATCH = 1024 * 1024;

/** A delta disk applied: the staged disk, with its result's map written next to it as diskN.map. */
export async function applyDeltaDisk(content: AsyncIterable<Buffer>, opts: ApplyDeltaOptions): Promise<StagedDisk> {
  const { base, index, dir } = opts;
  const what = `delta of disk ${index}`;
  const reader = await readDeltaMember(content, what);
  const h = reader.header;
  const b = base.disks[index]!;
  if (
    h.index !== index ||
    h.capacity !== b.capacity ||
    h.blockSize !== base.blockSize ||
    h.baseDigest !== b.digest ||
    h.base !== base.name
  )
    throw new P2vError('BAD_OVA', `${what}: its header does not match the descriptor and base`, {
      hint: 'the delta is inconsistent; the base is untouched: export again',
    });
  const target = join(dir, rawDiskName(index));
  const mapPath = join(dir, baseMapName(index));
  const map = await MapFileWriter.create(mapPath, base.blockSize, b.capacity);
  const fh = await open(target, constants.O_RDWR | constants.O_NOFOLLOW);
  const taken = opts.taken;
  const out = new BatchWriter(async (runs) => {
    if (taken) await taken.write(index, fh, runs);
    else for (const r of runs) await fh.writev(r.parts, r.offset);
  });
  try {
    const result = new ResultMap(mapFileBytes(join(base.dir, baseMapName(index))), h, (bytes) => map.addBytes(bytes));
    for await (const r of reader.records()) {
      if (r.kind === 'data') {
        await out.add(r.index * h.blockSize, r.data);
        await result.set(r.index, entryOf(r.data));
      } else {
        const start = r.first * h.blockSize;
        const end = Math.min(h.capacity, (r.first + r.count) * h.blockSize);
        for (let at = start; at < end; at += WRITE_RUN) await out.add(at, zeros(Math.min(WRITE_RUN, end - at)));
        for (let i = r.first; i < r.first + r.count; i++) await result.set(i, null);
      }
    }
    await out.flush();
    const digest = await result.finish();
    if (digest !== reader.resultDigest)
      throw new P2vError(
        'BAD_OVA',
        `${what}: the disk after applying is not the one the exporter sent (digest mismatch)`,
        {
          hint: 'the delta or the base does not match; the base is untouched: fetch the map again and export again',
        },
      );
    await fh.sync();
    const mapDigest = await map.close();
    if (mapDigest !== digest) throw new Error(`${what}: the map written is not the map computed`);
    opts.logger.debug(
      `${what}: ${out.written} bytes written onto ${taken ? 'the base, in place under its undo journal' : 'a copy of the base'}`,
    );
    const dataBytes = Math.min(b.capacity, (await fh.stat()).blocks * 512);
    return { index, diskId: opts.disk.diskId, path: target, capacity: b.capacity, dataBytes, mapDigest };
  } catch (e) {
    await map.abort();
    throw e;
  } finally {
    await fh.close();
  }
}
