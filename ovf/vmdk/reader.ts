/**
 * readStreamOptimized: decode a streamOptimized VMDK front to back, with
 * bounded memory, trusting nothing. The header and descriptor are read and
 * checked before the call resolves; the grains then come out as DataChunks in
 * ascending order, inflated in parallel with a bounded window.
 *
 * Layouts accepted: VMware's and ours (GT/GD metadata behind markers between
 * the grains, footer at the end) and qemu-img's (grain directory and tables up
 * front inside `overHead`, no footer, the stream ending in zero sectors). The
 * grain markers say what to decode; the grain tables prove that nothing is
 * missing (a GrainLedger per layout, ledger.ts): a stream cut anywhere, even
 * cleanly after a grain, is refused.
 */
import { availableParallelism } from 'node:os';
import { inflate as inflateCb, type ZlibOptions } from 'node:zlib';
import { SECTOR_SIZE, type DataChunk } from '../types.js';
import { P2vError } from '../../lib/errors.js';
import { badVmdk as bad, truncatedVmdk } from './vmdk-errors.js';
import type { GrainLedger, LedgerGeometry, StreamEnd } from './ledger.js';
import { TrailingLedger } from './ledger-trailing.js';
import { readUpFrontLedger } from './ledger-up-front.js';
import { StreamReader } from './stream-reader.js';
import { parseDescriptor } from './descriptor.js';
import {
  COMPRESSION_DEFLATE,
  FLAG_COMPRESSED,
  FLAG_MARKERS,
  FLAG_NEWLINE_TEST,
  FLAG_ZERO_GRAIN_GTE,
  GD_AT_END,
  decodeSparseHeader,
  newlineTestPasses,
  type SparseHeader,
} from './header.js';
import { GRAIN_MARKER_PREFIX, decodeMarker, roundUpToSector } from './marker.js';
import { mapOrdered } from './ordered-map.js';
import { isAllZero } from './grain-assembler.js';
import { BATCH_GRAINS, ZlibPool, batched, type ZlibEngine } from './zlib-pool.js';

/**
 * The reader runs on the staging host and spends little CPU per grain, so the
 * per-call cost of Node's async zlib shows: on the 2 GiB bench, batched
 * workers took 2.9 CPU-s where the threadpool took 4.8 (qemu-img: 3.1; even
 * at 1 GiB), for about 100 MiB more peak RSS (bench/README.md).
 */
export const READER_ENGINE: ZlibEngine = 'workers';

export interface VmdkStreamInfo {
  /** Virtual disk size in bytes. */
  capacity: number;
  /** The embedded descriptor text. */
  descriptor: string;
  /** Grain size in bytes. */
  grainSize: number;
}

export interface VmdkReadOptions {
  /** Refuse (POLICY) a disk whose capacity exceeds this many bytes (default 64 TiB). */
  maxCapacity?: number;
  /** Grains inflated in parallel (default: os.availableParallelism()). */
  concurrency?: number;
  /** Where zlib runs (default READER_ENGINE, worker threads). */
  engine?: ZlibEngine;
  /**
   * Accept an input that ends cleanly at a marker boundary without an
   * end-of-stream marker, as qemu-img 7.x writes them. Only for the layout
   * with the grain tables up front, where the tables still prove every grain
   * came; a VMDK with its metadata at the end must end with its footer and
   * end-of-stream marker whatever this says.
   */
  allowMissingEndMarker?: boolean;
}

export const DEFAULT_MAX_CAPACITY = 64 * 2 ** 40;
/** The largest embedded descriptor we read (VMware and qemu reserve 10 KiB). */
export const MAX_DESCRIPTOR_BYTES = 128 * 1024;
const MAX_GRAIN_BYTES = 1024 * 1024;
/**
 * The largest grain directory read (it is held whole to be checked): 2 Mi
 * grain tables, a 64 TiB disk at 64 KiB grains. Tiny grains on a huge disk
 * would otherwise make a header alone cost gigabytes.
 */
const MAX_GD_BYTES = 8 * 1024 * 1024;

function inflateGrain(data: Buffer, maxOutputLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const o: ZlibOptions = { maxOutputLength, chunkSize: maxOutputLength + 1024 };
    inflateCb(data, o, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

interface Layout {
  header: SparseHeader;
  capacity: number;
  grainBytes: number;
  gtSectors: number;
  gdSectors: number;
  numGTs: number;
  allowMissingEndMarker?: boolean;
}

/** Check every header field we rely on; returns the derived layout. */
function checkHeader(h: SparseHeader, maxCapacity: number): Layout {
  if (h.version < 1 || h.version > 3)
    throw bad(`VMDK header: unsupported sparse extent version ${h.version} (1 to 3 are known)`);
  if (h.flags & FLAG_NEWLINE_TEST && !newlineTestPasses(h)) {
    throw bad(
      'VMDK header: newline test bytes are damaged (the file went through a text-mode transfer)',
      'copy the file again in binary mode',
    );
  }
  if (!(h.flags & FLAG_COMPRESSED) || !(h.flags & FLAG_MARKERS)) {
    throw bad(
      `VMDK header: flags 0x${h.flags.toString(16)} lack compressed grains with markers, so this is not a streamOptimized VMDK`,
    );
  }
  if (h.compressAlgorithm !== COMPRESSION_DEFLATE)
    throw bad(`VMDK header: unknown compression algorithm ${h.compressAlgorithm} (only 1, deflate, exists)`);
  const g = h.grainSize;
  if (g < 1n || g > BigInt(MAX_GRAIN_BYTES / SECTOR_SIZE) || (g & (g - 1n)) !== 0n) {
    throw bad(`VMDK header: grain size of ${g} sectors is not a power of two up to 1 MiB`);
  }
  if (h.numGTEsPerGT < 1 || h.numGTEsPerGT > 65536 || (h.numGTEsPerGT & (h.numGTEsPerGT - 1)) !== 0) {
    throw bad(`VMDK header: ${h.numGTEsPerGT} entries per grain table is not a power of two up to 65536`);
  }
  const capBytes = h.capacity * BigInt(SECTOR_SIZE);
  if (capBytes > BigInt(maxCapacity)) {
    throw new P2vError('POLICY', `VMDK capacity of ${capBytes} bytes exceeds the limit of ${maxCapacity} bytes`, {
      hint: 'raise the disk size limit if this disk is expected',
    });
  }
  if (h.descriptorSize * BigInt(SECTOR_SIZE) > BigInt(MAX_DESCRIPTOR_BYTES)) {
    throw bad(
      `VMDK header: embedded descriptor of ${h.descriptorSize} sectors exceeds the ${MAX_DESCRIPTOR_BYTES / SECTOR_SIZE}-sector limit`,
    );
  }
  if (h.descriptorSize === 0n || h.descriptorOffset < 1n) {
    throw bad(`VMDK header: no embedded descriptor (offset ${h.descriptorOffset}, ${h.descriptorSize} sectors)`);
  }
  const grainBytes = Number(g) * SECTOR_SIZE;
  const capacity = Number(capBytes);
  const numGrains = Math.ceil(capacity / grainBytes);
  const numGTs = Math.ceil(numGrains / h.numGTEsPerGT);
  const gtSectors = roundUpToSector(h.numGTEsPerGT * 4) / SECTOR_SIZE;
  const gdSectors = roundUpToSector(numGTs * 4) / SECTOR_SIZE;
  if (gdSectors * SECTOR_SIZE > MAX_GD_BYTES) {
    throw bad(
      `VMDK header: ${numGTs} grain tables (capacity ${capBytes} bytes, grains of ${grainBytes} bytes) are more than the ${MAX_GD_BYTES / 4} this reader takes`,
    );
  }
  // Up-front metadata (qemu) is at most header + descriptor + two copies of GD and every GT, plus alignment to a grain.
  const maxOverhead = BigInt(1 + Number(h.descriptorSize) + 2 * (gdSectors + numGTs * gtSectors) + 2 * Number(g));
  const descEnd = h.descriptorOffset + h.descriptorSize;
  if (descEnd > maxOverhead || h.overHead > maxOverhead) {
    throw bad(
      `VMDK header: metadata area of ${h.overHead > descEnd ? h.overHead : descEnd} sectors is larger than a disk of this size needs`,
    );
  }
  return { header: h, capacity, grainBytes, gtSectors, gdSectors, numGTs };
}

function decodeDescriptor(raw: Buffer, where: number): string {
  const nul = raw.indexOf(0);
  const text = raw.subarray(0, nul < 0 ? raw.length : nul).toString('utf8');
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text))
    throw bad(`VMDK descriptor at byte ${where} is not text`);
  const d = parseDescriptor(text);
  if (d.createType !== 'streamOptimized') {
    throw bad(
      `VMDK descriptor at byte ${where}: createType is ${d.createType === undefined ? 'missing' : `"${d.createType}"`}, not "streamOptimized"`,
    );
  }
  return text;
}

/**
 * Reads header + embedded descriptor first, then `grains` yields a DataChunk
 * per non-zero grain in ascending order (the last grain clipped to capacity).
 */
export async function readStreamOptimized(
  input: AsyncIterable<Buffer>,
  opts: VmdkReadOptions = {},
): Promise<VmdkStreamInfo & { grains: AsyncIterable<DataChunk> }> {
  const r = new StreamReader(input);
  try {
    const h = decodeSparseHeader(await r.read(SECTOR_SIZE, 'the VMDK header'), 'VMDK header at byte 0');
    const layout = checkHeader(h, opts.maxCapacity ?? DEFAULT_MAX_CAPACITY);
    await r.skip(Number(h.descriptorOffset) * SECTOR_SIZE - r.position, 'the metadata before the descriptor');
    const descAt = r.position;
    const descriptor = decodeDescriptor(
      await r.read(Number(h.descriptorSize) * SECTOR_SIZE, 'the VMDK descriptor'),
      descAt,
    );
    const grainsStart = Math.max(r.position, Number(h.overHead) * SECTOR_SIZE);
    const geo: LedgerGeometry = {
      grainSectors: Number(h.grainSize),
      gtEntries: h.numGTEsPerGT,
      numGTs: layout.numGTs,
      gtSectors: layout.gtSectors,
      gdSectors: layout.gdSectors,
      zeroGrainEntries: (h.flags & FLAG_ZERO_GRAIN_GTE) !== 0,
      grainsSector: grainsStart / SECTOR_SIZE,
    };
    let ledger: GrainLedger;
    if (h.gdOffset === GD_AT_END || h.gdOffset >= BigInt(geo.grainsSector)) {
      await r.skip(grainsStart - r.position, 'the VMDK metadata before the first grain');
      ledger = new TrailingLedger(geo, h.gdOffset === GD_AT_END ? null : Number(h.gdOffset));
    } else {
      ledger = await readUpFrontLedger(r, geo, Number(h.gdOffset));
    }
    const concurrency = opts.concurrency ?? availableParallelism();
    let started = false;
    return {
      capacity: layout.capacity,
      descriptor,
      grainSize: layout.grainBytes,
      grains: {
        [Symbol.asyncIterator]() {
          if (started) throw new Error('readStreamOptimized: grains can be iterated only once');
          started = true;
          return decodeGrains(
            r,
            { ...layout, allowMissingEndMarker: opts.allowMissingEndMarker === true },
            ledger,
            concurrency,
            opts.engine ?? READER_ENGINE,
          );
        },
      },
    };
  } catch (e) {
    await r.close();
    throw e;
  }
}

interface RawGrain {
  lba: bigint;
  at: number;
  data: Buffer;
}

/**
 * Walk the markers; yield each grain's compressed bytes, hand grains and
 * tables to the ledger and validate everything else in passing. How the
 * stream ended is left in `ended` for the ledger's final proof.
 */
async function* scanMarkers(
  r: StreamReader,
  l: Layout,
  ledger: GrainLedger,
  ended: { end?: StreamEnd },
): AsyncGenerator<RawGrain> {
  const capSectors = l.header.capacity;
  const grainSectors = l.header.grainSize;
  const grainSectorCount = Number(grainSectors);
  const maxCompressed = l.grainBytes + (l.grainBytes >> 4) + 1024; // deflate's worst case is a few bytes per 16 KiB
  let lastLba = -1n;
  for (;;) {
    const at = r.position;
    if (await r.atEnd()) {
      ended.end = { kind: 'eof', at };
      return;
    }
    const prefix = await r.read(GRAIN_MARKER_PREFIX, 'a VMDK marker');
    const isGrain = prefix.readUInt32LE(8) > 0;
    const m = decodeMarker(isGrain ? prefix : Buffer.concat([prefix, await r.read(4, 'a VMDK marker')]));
    if (m.kind === 'grain') {
      if (m.size > maxCompressed)
        throw bad(`VMDK grain marker at byte ${at}: compressed size ${m.size} is larger than a grain can deflate to`);
      if (m.lba % grainSectors !== 0n)
        throw bad(`VMDK grain marker at byte ${at}: LBA ${m.lba} is not on a grain boundary`);
      if (m.lba >= capSectors)
        throw bad(`VMDK grain marker at byte ${at}: LBA ${m.lba} is beyond the capacity of ${capSectors} sectors`);
      if (m.lba <= lastLba)
        throw bad(`VMDK grain marker at byte ${at}: LBA ${m.lba} does not follow the previous grain's LBA ${lastLba}`);
      lastLba = m.lba;
      ledger.grain(Number(m.lba) / grainSectorCount, at / SECTOR_SIZE, at);
      const data = await r.read(m.size, `the grain at LBA ${m.lba}`);
      await r.skip(
        roundUpToSector(GRAIN_MARKER_PREFIX + m.size) - GRAIN_MARKER_PREFIX - m.size,
        `the padding of the grain at LBA ${m.lba}`,
      );
      yield { lba: m.lba, at, data };
      continue;
    }
    await r.skip(SECTOR_SIZE - GRAIN_MARKER_PREFIX - 4, 'a VMDK marker');
    switch (m.kind) {
      case 'gt':
        if (m.sectors !== BigInt(l.gtSectors))
          throw bad(`VMDK grain table marker at byte ${at}: ${m.sectors} sectors, expected ${l.gtSectors}`);
        {
          const tAt = r.position;
          ledger.gt(await r.read(l.gtSectors * SECTOR_SIZE, 'a VMDK grain table'), tAt / SECTOR_SIZE, tAt);
        }
        break;
      case 'gd':
        if (m.sectors !== BigInt(l.gdSectors))
          throw bad(`VMDK grain directory marker at byte ${at}: ${m.sectors} sectors, expected ${l.gdSectors}`);
        {
          const dAt = r.position;
          ledger.gd(await r.read(l.gdSectors * SECTOR_SIZE, 'the VMDK grain directory'), dAt / SECTOR_SIZE, dAt);
        }
        break;
      case 'footer': {
        if (m.sectors !== 1n) throw bad(`VMDK footer marker at byte ${at}: ${m.sectors} sectors, expected 1`);
        const fAt = r.position;
        const f = decodeSparseHeader(await r.read(SECTOR_SIZE, 'the VMDK footer'), `VMDK footer at byte ${fAt}`);
        if (
          f.capacity !== l.header.capacity ||
          f.grainSize !== l.header.grainSize ||
          f.numGTEsPerGT !== l.header.numGTEsPerGT
        ) {
          throw bad(`VMDK footer at byte ${fAt} disagrees with the header (capacity, grain size or grain table size)`);
        }
        ledger.footer(f.gdOffset, fAt);
        break;
      }
      case 'eos': {
        // qemu-img pads the end with zero sectors (each one an end-of-stream marker); anything else after it is foreign.
        const junk = await r.drainExpectingZeros();
        if (junk >= 0) throw bad(`VMDK stream has data at byte ${junk}, after its end-of-stream marker at byte ${at}`);
        ended.end = { kind: 'eos', at };
        return;
      }
      case 'unknown':
        throw bad(`VMDK marker at byte ${at}: unknown type ${m.type}`);
    }
  }
}

async function* decodeGrains(
  r: StreamReader,
  l: Layout,
  ledger: GrainLedger,
  concurrency: number,
  engine: ZlibEngine,
): AsyncGenerator<DataChunk> {
  /** Judge one grain's inflate outcome: exactly one grain, or cut at the capacity for the last one. */
  const judge = (
    g: RawGrain,
    out: Buffer | undefined,
    err: { code?: string | null; message: string } | undefined,
  ): DataChunk => {
    if (err || !out) {
      if (err?.code === 'ERR_BUFFER_TOO_LARGE')
        throw bad(`VMDK grain at byte ${g.at} (LBA ${g.lba}) inflates to more than one grain of ${l.grainBytes} bytes`);
      throw bad(`VMDK grain at byte ${g.at} (LBA ${g.lba}) is not valid zlib data: ${err?.message ?? 'no output'}`);
    }
    const offset = Number(g.lba) * SECTOR_SIZE;
    const expected = Math.min(l.grainBytes, l.capacity - offset);
    if (out.length !== l.grainBytes && out.length !== expected) {
      throw bad(`VMDK grain at byte ${g.at} (LBA ${g.lba}) inflates to ${out.length} bytes, expected ${expected}`);
    }
    return { offset, data: out.length > expected ? out.subarray(0, expected) : out };
  };
  const pool = engine === 'workers' ? new ZlibPool(concurrency) : null;
  const ended: { end?: StreamEnd } = {};
  const raw = scanMarkers(r, l, ledger, ended);
  try {
    if (pool) {
      const inflateBatch = async (batch: RawGrain[]): Promise<DataChunk[]> => {
        const results = await pool.run(
          'inflate',
          batch.map((g) => g.data),
          { maxOutputLength: l.grainBytes },
        );
        return batch.map((g, i) => judge(g, results[i]!.data, results[i]!.error));
      };
      for await (const chunks of mapOrdered(batched(raw, BATCH_GRAINS), inflateBatch, concurrency * 2)) {
        for (const c of chunks) if (!isAllZero(c.data)) yield c;
      }
    } else {
      const inflateOne = async (g: RawGrain): Promise<DataChunk> => {
        try {
          return judge(g, await inflateGrain(g.data, l.grainBytes), undefined);
        } catch (e) {
          if (e instanceof P2vError) throw e;
          return judge(g, undefined, { code: (e as { code?: string }).code ?? null, message: (e as Error).message });
        }
      };
      for await (const c of mapOrdered(raw, inflateOne, concurrency * 2)) {
        if (!isAllZero(c.data)) yield c;
      }
    }
    // Every grain came out whole; now prove no grain, table or end is missing.
    const end = ended.end!;
    ledger.finish(end);
    if (end.kind === 'eof' && !l.allowMissingEndMarker)
      throw truncatedVmdk(`VMDK stream ends at byte ${end.at} without an end-of-stream marker`);
  } finally {
    await pool?.close();
    await r.close();
  }
}
