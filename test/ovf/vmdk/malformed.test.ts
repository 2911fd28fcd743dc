/**
 * A corpus of broken and hostile streamOptimized VMDKs, each built here from
 * a valid one, each refused with its exact one-line message.
 */
import { describe, it, expect } from 'vitest';
import { deflateSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import {
  readStreamOptimized,
  buildDescriptor,
  encodeSparseHeader,
  streamHeader,
  encodeGrain,
  encodeMetadataMarker,
  encodeTable,
  roundUpToSector,
  GD_AT_END,
  MARKER_EOS,
  MARKER_FOOTER,
  MARKER_GD,
  MARKER_GT,
  READER_ENGINE,
  type SparseHeader,
  type ZlibEngine,
} from '../../../ovf/vmdk/index.js';
import { isP2vError, type ErrorCode } from '../../../lib/errors.js';
import { bufferStream } from './fixtures.js';

const GRAIN = 65536;
const CAP_SECTORS = 4096n; // 2 MiB: one grain table

interface Built {
  bytes: Buffer;
  /** Byte offset of each part, by name. */
  at: Record<string, number>;
}

interface Spec {
  header?: Partial<SparseHeader>;
  createType?: string;
  grain1?: Buffer;
  lba2?: bigint;
  grain2?: Buffer;
  /** Raw compressed bytes for grain 2 (skips deflate). */
  raw2?: Buffer;
  size2?: number;
  gtSectors?: number;
  markerType?: number;
  footer?: Partial<SparseHeader>;
  /** Parts left out (the offsets of those after them move up). */
  omit?: string[];
  /** Damage done to the parts after the tables were filled in. */
  patch?: (part: (name: string) => Buffer, at: Record<string, number>) => void;
}

/** header · descriptor · grain LBA 0 · grain LBA 1024 · GT · GD · footer · EOS (tables filled in), with optional damage. */
function build(s: Spec = {}): Built {
  const parts: [string, Buffer][] = [];
  let desc = buildDescriptor({
    capacitySectors: CAP_SECTORS,
    fileName: 'disk1.vmdk',
    adapterType: 'lsilogic',
    hwVersion: '4',
    cid: 0x1234abcd,
  });
  if (s.createType) desc = desc.replace('"streamOptimized"', `"${s.createType}"`);
  const descBuf = Buffer.alloc(roundUpToSector(desc.length));
  descBuf.write(desc, 'latin1');
  const descSectors = BigInt(descBuf.length / 512);
  parts.push(['header', encodeSparseHeader({ ...streamHeader(CAP_SECTORS, descSectors, GD_AT_END), ...s.header })]);
  parts.push(['descriptor', descBuf]);
  parts.push(['grain1', encodeGrain(0n, deflateSync(s.grain1 ?? Buffer.alloc(GRAIN, 'a')))]);
  const g2 = encodeGrain(s.lba2 ?? 1024n, s.raw2 ?? deflateSync(s.grain2 ?? Buffer.alloc(GRAIN, 'b')));
  if (s.size2 !== undefined) g2.writeUInt32LE(s.size2, 8);
  parts.push(['grain2', g2]);
  const gtMarker = encodeMetadataMarker(MARKER_GT, s.gtSectors ?? 4);
  if (s.markerType !== undefined) gtMarker.writeUInt32LE(s.markerType, 12);
  parts.push(['gtMarker', gtMarker]);
  parts.push(['gt', encodeTable(new Uint32Array(512))]);
  parts.push(['gdMarker', encodeMetadataMarker(MARKER_GD, 1)]);
  parts.push(['gd', encodeTable(new Uint32Array(1))]);
  parts.push(['footerMarker', encodeMetadataMarker(MARKER_FOOTER, 1)]);
  parts.push(['footer', encodeSparseHeader({ ...streamHeader(CAP_SECTORS, descSectors, 0n), ...s.footer })]);
  parts.push(['eos', encodeMetadataMarker(MARKER_EOS, 0)]);
  const kept = parts.filter(([name]) => !s.omit?.includes(name));
  const at: Record<string, number> = {};
  let pos = 0;
  for (const [name, b] of kept) {
    at[name] = pos;
    pos += b.length;
  }
  at.end = pos;
  // The metadata a writer would give these grains: table entries, directory, footer.
  const part = (name: string) => parts.find((p) => p[0] === name)![1];
  part('gt').writeUInt32LE(at.grain1! / 512, 0);
  const lba2 = s.lba2 ?? 1024n;
  if (lba2 % 128n === 0n && lba2 < CAP_SECTORS && lba2 > 0n)
    part('gt').writeUInt32LE(at.grain2! / 512, Number(lba2 / 128n) * 4);
  part('gd').writeUInt32LE(at.gt! / 512, 0);
  if (s.footer?.gdOffset === undefined && at.gd !== undefined)
    part('footer').writeBigUInt64LE(BigInt(at.gd! / 512), 56);
  s.patch?.(part, at);
  return { bytes: Buffer.concat(kept.map((p) => p[1])), at };
}

let engine: ZlibEngine = READER_ENGINE;

type ReadOpts = { maxCapacity?: number; allowMissingEndMarker?: boolean };

async function readAll(bytes: Buffer, opts: ReadOpts = {}): Promise<number> {
  const info = await readStreamOptimized(bufferStream(bytes, 1000), { concurrency: 2, engine, ...opts });
  let n = 0;
  for await (const _ of info.grains) n++;
  return n;
}

async function expectRefused(bytes: Buffer, code: ErrorCode, message: string, opts: ReadOpts = {}): Promise<void> {
  let caught: unknown;
  try {
    await readAll(bytes, opts);
  } catch (e) {
    caught = e;
  }
  expect(isP2vError(caught), `expected a P2vError, got ${String(caught)}`).toBe(true);
  if (!isP2vError(caught)) return;
  expect({ code: caught.code, message: caught.message }).toEqual({ code, message });
  expect(caught.message).not.toContain('\n');
  expect(caught.hint).toBeTruthy();
}

describe('readStreamOptimized refuses malformed VMDKs', () => {
  const base = build();
  const { at } = base;

  it('reads the undamaged base stream (2 grains)', async () => {
    expect(await readAll(base.bytes)).toBe(2);
  });

  const cases: {
    name: string;
    bytes: () => Buffer;
    code: ErrorCode;
    message: string;
    maxCapacity?: number;
    lenient?: boolean;
  }[] = [
    {
      name: 'bad magic',
      bytes: () => Buffer.concat([Buffer.from('LDMV'), base.bytes.subarray(4)]),
      code: 'BAD_VMDK',
      message: 'VMDK header at byte 0: not a VMDK sparse extent (magic 0x564d444c, expected "KDMV")',
    },
    {
      name: 'truncated inside the header',
      bytes: () => base.bytes.subarray(0, 100),
      code: 'TRUNCATED',
      message: 'VMDK stream ends at byte 100 inside the VMDK header (512 bytes from byte 0)',
    },
    {
      name: 'truncated inside the descriptor',
      bytes: () => base.bytes.subarray(0, 700),
      code: 'TRUNCATED',
      message: `VMDK stream ends at byte 700 inside the VMDK descriptor (${at.grain1! - 512} bytes from byte 512)`,
    },
    {
      name: 'truncated inside a grain',
      bytes: () => base.bytes.subarray(0, at.grain1! + 62),
      code: 'TRUNCATED',
      message: `VMDK stream ends at byte ${at.grain1! + 62} inside the grain at LBA 0 (${base.bytes.readUInt32LE(at.grain1! + 8)} bytes from byte ${at.grain1! + 12})`,
    },
    {
      name: 'truncated inside a marker',
      bytes: () => base.bytes.subarray(0, at.grain2! + 6),
      code: 'TRUNCATED',
      message: `VMDK stream ends at byte ${at.grain2! + 6} inside a VMDK marker (12 bytes from byte ${at.grain2})`,
    },
    {
      name: 'truncated between markers',
      bytes: () => base.bytes.subarray(0, at.gtMarker!),
      code: 'TRUNCATED',
      message: `VMDK stream ends at byte ${at.gtMarker} before grain table 0`,
    },
    {
      name: 'cut after its first grain, read as leniently as the importer does (issue 13)',
      bytes: () => base.bytes.subarray(0, at.grain2),
      lenient: true,
      code: 'TRUNCATED',
      message: `VMDK stream ends at byte ${at.grain2} before grain table 0`,
    },
    {
      name: 'cut before the footer, read leniently',
      bytes: () => base.bytes.subarray(0, at.footerMarker),
      lenient: true,
      code: 'TRUNCATED',
      message: `VMDK stream ends at byte ${at.footerMarker} before its footer`,
    },
    {
      name: 'cut before the end-of-stream marker, read leniently',
      bytes: () => base.bytes.subarray(0, at.eos),
      lenient: true,
      code: 'TRUNCATED',
      message: `VMDK stream ends at byte ${at.eos} without an end-of-stream marker`,
    },
    {
      name: 'grain table leaving out a grain',
      bytes: () => build({ patch: (p) => p('gt').writeUInt32LE(0, 8 * 4) }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK grain table at byte ${at.gt} leaves out the grain at LBA 1024, which came at byte ${at.grain2}`,
    },
    {
      name: 'grain table listing a grain the stream did not carry',
      bytes: () => build({ patch: (p) => p('gt').writeUInt32LE(99, 5 * 4) }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK grain table at byte ${at.gt} lists a grain at LBA 640 (sector 99) that the stream did not carry`,
    },
    {
      name: 'grain table placing a grain elsewhere',
      bytes: () => build({ patch: (p, a) => p('gt').writeUInt32LE(a.grain1! / 512, 8 * 4) }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK grain table at byte ${at.gt} puts the grain at LBA 1024 at byte ${at.grain1}, but it came at byte ${at.grain2}`,
    },
    {
      name: 'grain directory pointing away from the grain table',
      bytes: () => build({ patch: (p, a) => p('gd').writeUInt32LE(a.gd! / 512, 0) }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK grain directory at byte ${at.gd}: entry 0 points at sector ${at.gd! / 512}, but grain table 0 came at sector ${at.gt! / 512}`,
    },
    {
      name: 'grain directory marker of the wrong size',
      bytes: () => build({ patch: (p) => p('gdMarker').writeBigUInt64LE(2n, 0) }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK grain directory marker at byte ${at.gdMarker}: 2 sectors, expected 1`,
    },
    {
      name: 'footer pointing away from the grain directory',
      bytes: () => build({ footer: { gdOffset: 5n } }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK footer at byte ${at.footer} puts the grain directory at sector 5, but it came at sector ${at.gd! / 512}`,
    },
    {
      name: 'end-of-stream marker before the grain directory',
      bytes: () => build({ omit: ['gdMarker', 'gd', 'footerMarker', 'footer'] }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK end-of-stream marker at byte ${at.gdMarker} comes before its grain directory`,
    },
    {
      name: 'end-of-stream marker before the footer',
      bytes: () => build({ omit: ['footerMarker', 'footer'] }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK end-of-stream marker at byte ${at.footerMarker} comes before its footer`,
    },
    {
      name: 'grains without their grain table',
      bytes: () => build({ omit: ['gtMarker', 'gt'], patch: (p) => p('gd').writeUInt32LE(0, 0) }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK grain directory at byte ${at.gtMarker! + 512} comes before grain table 0, which the grains before it need`,
    },
    {
      name: 'truncated inside the footer',
      bytes: () => base.bytes.subarray(0, at.footer! + 100),
      code: 'TRUNCATED',
      message: `VMDK stream ends at byte ${at.footer! + 100} inside the VMDK footer (512 bytes from byte ${at.footer})`,
    },
    {
      name: 'truncated before the end-of-stream marker',
      bytes: () => base.bytes.subarray(0, at.eos!),
      code: 'TRUNCATED',
      message: `VMDK stream ends at byte ${at.eos} without an end-of-stream marker`,
    },
    {
      name: 'LBA out of order',
      bytes: () => build({ lba2: 0n }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK grain marker at byte ${at.grain2}: LBA 0 does not follow the previous grain's LBA 0`,
    },
    {
      name: 'LBA past capacity',
      bytes: () => build({ lba2: CAP_SECTORS }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK grain marker at byte ${at.grain2}: LBA 4096 is beyond the capacity of 4096 sectors`,
    },
    {
      name: 'LBA off a grain boundary',
      bytes: () => build({ lba2: 1000n }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK grain marker at byte ${at.grain2}: LBA 1000 is not on a grain boundary`,
    },
    {
      name: 'grain inflating beyond one grain (zlib bomb)',
      bytes: () => build({ grain2: Buffer.alloc(64 * GRAIN) }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK grain at byte ${at.grain2} (LBA 1024) inflates to more than one grain of 65536 bytes`,
    },
    {
      name: 'grain inflating to less than a grain',
      bytes: () => build({ grain2: Buffer.alloc(1000, 1) }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK grain at byte ${at.grain2} (LBA 1024) inflates to 1000 bytes, expected 65536`,
    },
    {
      name: 'grain that is not zlib data',
      bytes: () => build({ raw2: Buffer.from('this is not deflate') }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK grain at byte ${at.grain2} (LBA 1024) is not valid zlib data: incorrect header check`,
    },
    {
      name: 'grain with an absurd compressed size',
      bytes: () => build({ size2: 0x7fffffff }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK grain marker at byte ${at.grain2}: compressed size 2147483647 is larger than a grain can deflate to`,
    },
    {
      name: 'oversized descriptor',
      bytes: () => build({ header: { descriptorSize: 100_000n } }).bytes,
      code: 'BAD_VMDK',
      message: 'VMDK header: embedded descriptor of 100000 sectors exceeds the 256-sector limit',
    },
    {
      name: 'capacity above maxCapacity',
      bytes: () => base.bytes,
      maxCapacity: 1024 * 1024,
      code: 'POLICY',
      message: 'VMDK capacity of 2097152 bytes exceeds the limit of 1048576 bytes',
    },
    {
      name: 'newline test damaged by a text-mode transfer',
      bytes: () => build({ header: { newlineBytes: [0x0a, 0x20, 0x0a, 0x0a] } }).bytes,
      code: 'BAD_VMDK',
      message: 'VMDK header: newline test bytes are damaged (the file went through a text-mode transfer)',
    },
    {
      name: 'monolithicSparse flags (no compression, no markers)',
      bytes: () => build({ header: { flags: 3 } }).bytes,
      code: 'BAD_VMDK',
      message: 'VMDK header: flags 0x3 lack compressed grains with markers, so this is not a streamOptimized VMDK',
    },
    {
      name: 'unknown sparse version',
      bytes: () => build({ header: { version: 4 } }).bytes,
      code: 'BAD_VMDK',
      message: 'VMDK header: unsupported sparse extent version 4 (1 to 3 are known)',
    },
    {
      name: 'grain size not a power of two',
      bytes: () => build({ header: { grainSize: 100n } }).bytes,
      code: 'BAD_VMDK',
      message: 'VMDK header: grain size of 100 sectors is not a power of two up to 1 MiB',
    },
    {
      name: 'grain directory too big to hold (tiny grains on a huge disk)',
      bytes: () => build({ header: { grainSize: 1n, capacity: 2n ** 36n } }).bytes,
      code: 'BAD_VMDK',
      message:
        'VMDK header: 134217728 grain tables (capacity 35184372088832 bytes, grains of 512 bytes) are more than the 2097152 this reader takes',
    },
    {
      name: 'metadata area larger than the disk needs',
      bytes: () => build({ header: { overHead: 1n << 40n } }).bytes,
      code: 'BAD_VMDK',
      message: 'VMDK header: metadata area of 1099511627776 sectors is larger than a disk of this size needs',
    },
    {
      name: 'descriptor of another create type',
      bytes: () => build({ createType: 'monolithicSparse' }).bytes,
      code: 'BAD_VMDK',
      message: 'VMDK descriptor at byte 512: createType is "monolithicSparse", not "streamOptimized"',
    },
    {
      name: 'unknown marker type',
      bytes: () => build({ markerType: 7 }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK marker at byte ${at.gtMarker}: unknown type 7`,
    },
    {
      name: 'grain table marker of the wrong size',
      bytes: () => build({ gtSectors: 1 << 20 }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK grain table marker at byte ${at.gtMarker}: 1048576 sectors, expected 4`,
    },
    {
      name: 'footer disagreeing with the header',
      bytes: () => build({ footer: { capacity: 8192n } }).bytes,
      code: 'BAD_VMDK',
      message: `VMDK footer at byte ${at.footer} disagrees with the header (capacity, grain size or grain table size)`,
    },
    {
      name: 'data after the end-of-stream marker',
      bytes: () => {
        const tail = Buffer.alloc(1024);
        tail[600] = 1;
        return Buffer.concat([base.bytes, tail]);
      },
      code: 'BAD_VMDK',
      message: `VMDK stream has data at byte ${at.end! + 600}, after its end-of-stream marker at byte ${at.eos}`,
    },
  ];

  for (const c of cases) {
    for (const e of ['threadpool', 'workers'] as const) {
      it(`${c.name} (${e} engine)`, async () => {
        engine = e;
        try {
          await expectRefused(c.bytes(), c.code, c.message, {
            ...(c.maxCapacity === undefined ? {} : { maxCapacity: c.maxCapacity }),
            ...(c.lenient ? { allowMissingEndMarker: true } : {}),
          });
        } finally {
          engine = READER_ENGINE;
        }
      });
    }
  }

  it('accepts zero padding after the end-of-stream marker (qemu-img pads its files)', async () => {
    expect(await readAll(Buffer.concat([base.bytes, Buffer.alloc(4096)]))).toBe(2);
  });

  it('never returns a grain from a stream of random bytes behind a valid header', async () => {
    const junk = Buffer.concat([base.bytes.subarray(0, at.grain1), randomBytes(8192)]);
    await expect(readAll(junk)).rejects.toSatisfy(
      (e: unknown) => isP2vError(e, 'BAD_VMDK') || isP2vError(e, 'TRUNCATED'),
    );
  });
});
