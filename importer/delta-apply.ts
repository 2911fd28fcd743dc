/**
 * Receiving a delta (docs/design-delta.md): admit it against the machine's
 * base before any data is written, then apply each delta disk to a copy of
 * the base disk in the import's own `.partial` dir (reflink where the
 * filesystem has it), so the base is never written and a failed delta costs
 * only the copy. Applying also writes the result's block map, and refuses
 * the result unless its whole-disk digest is the one the exporter stated.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { P2vError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import {
  entryOf,
  parseDeltaFormatUri,
  readDeltaMember,
  ResultEntries,
  zeros,
  type DeltaFormat,
} from '../ovf/delta/index.js';
import type { MachineDescription, OvfDisk } from '../ovf/types.js';
import {
  baseDiskName,
  baseMapName,
  copySparse,
  ensureBaseMaps,
  entriesOfMapFile,
  MapFileWriter,
  openBase,
  type Base,
} from './base.js';
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

export interface ApplyDeltaOptions {
  /** The `.partial` work dir. */
  dir: string;
  index: number;
  disk: OvfDisk;
  base: Base;
  format: DeltaFormat;
  logger: Logger;
}

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
  await copySparse(join(base.dir, baseDiskName(index)), target);
  const mapPath = join(dir, baseMapName(index));
  const map = await MapFileWriter.create(mapPath, base.blockSize, b.capacity);
  const fh = await open(target, 'r+');
  let written = 0;
  try {
    const result = new ResultEntries(
      entriesOfMapFile(join(base.dir, baseMapName(index))),
      h,
      (e) => map.add(e),
      () => map.flushIfFull(),
    );
    for await (const r of reader.records()) {
      if (r.kind === 'data') {
        await fh.write(r.data, 0, r.data.length, r.index * h.blockSize);
        written += r.data.length;
        await result.set(r.index, entryOf(r.data));
      } else {
        for (let i = r.first; i < r.first + r.count; i++) {
          const len = Math.min(h.blockSize, h.capacity - i * h.blockSize);
          await fh.write(zeros(len), 0, len, i * h.blockSize);
          await result.set(i, null);
        }
      }
    }
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
    opts.logger.debug(`${what}: ${written} bytes written onto a copy of the base`);
    const dataBytes = Math.min(b.capacity, (await fh.stat()).blocks * 512);
    return { index, diskId: opts.disk.diskId, path: target, capacity: b.capacity, dataBytes, mapDigest };
  } catch (e) {
    await map.abort();
    throw e;
  } finally {
    await fh.close();
  }
}
