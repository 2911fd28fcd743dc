/**
 * A streamOptimized VMDK cut short is never taken for a whole disk (issue 13,
 * item 3). Two small multi-grain VMDKs, one of ours (metadata at the end) and
 * one made here by `qemu-img convert -o subformat=streamOptimized` (tables up
 * front, no end-of-stream marker), are cut at every sector boundary and in
 * the middle of every grain and marker. Each cut is read three ways, with the
 * importer's options (allowMissingEndMarker: the lenient path): bare, inside
 * an OVA whose manifest was built for the cut bytes (so the manifest matches
 * and cannot be what refuses it), and inside an OVA with no manifest. Each
 * must fail with one line, BAD_VMDK or TRUNCATED. Only a qemu file cut after
 * its last grain (in its zero padding) is whole, and must read back equal.
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { readStreamOptimized, writeStreamOptimized } from '../../../ovf/vmdk/index.js';
import { encodeTarHeader, formatManifest, readOva, tarPadding, TAR_END } from '../../../ovf/ova/index.js';
import { isP2vError } from '../../../lib/errors.js';
import { needPrograms } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';
import { parseTestDescriptor, testDescriptor } from '../ova/helpers.js';
import { bufferStream, fileContent, makeImage, readFile, writeAll, type Extent } from './fixtures.js';

const MiB = 1024 * 1024;
const CAPACITY = 40 * MiB; // two grain tables
const EXTENTS: Extent[] = [
  { offset: 0, length: 3 * 65536, fill: 'text' },
  { offset: 35 * MiB, length: 65536 + 700, fill: 'random' },
];
const READ = { allowMissingEndMarker: true, engine: 'threadpool', concurrency: 2 } as const;

/** Where each grain and marker starts, and where the last grain ends (qemu: the data ends there). */
function markers(vmdk: Buffer): { starts: number[]; midGrains: number[]; dataEnd: number } {
  const starts: number[] = [];
  const midGrains: number[] = [];
  let p = Number(vmdk.readBigUInt64LE(64)) * 512;
  let dataEnd = p;
  while (p + 16 <= vmdk.length) {
    starts.push(p);
    const size = vmdk.readUInt32LE(p + 8);
    if (size > 0) {
      midGrains.push(p + 12 + (size >> 1));
      p += Math.ceil((12 + size) / 512) * 512;
      dataEnd = p;
      continue;
    }
    const type = vmdk.readUInt32LE(p + 12);
    if (type === 0) break;
    p += 512 + Number(vmdk.readBigUInt64LE(p)) * 512;
  }
  return { starts, midGrains, dataEnd };
}

/** A tar of descriptor, disk and (optionally) a manifest of both. */
function ovaOf(disk: Buffer, manifest: boolean): Buffer {
  const ovf = Buffer.from(testDescriptor([{ id: 'file1', href: 'disk1.vmdk' }]));
  const members: [string, Buffer][] = [
    ['vm.ovf', ovf],
    ['disk1.vmdk', disk],
  ];
  if (manifest) {
    const lines = members.map(([name, b]) => ({
      algorithm: 'sha256' as const,
      name,
      hex: createHash('sha256').update(b).digest('hex'),
    }));
    members.push(['vm.mf', Buffer.from(formatManifest(lines))]);
  }
  const parts: Buffer[] = [];
  for (const [name, b] of members)
    parts.push(encodeTarHeader({ name, size: b.length }), b, Buffer.alloc(tarPadding(b.length)));
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

/** The disk the VMDK decodes to (built only when `keep`: a refused cut needs no 40 MiB buffer). */
async function decode(bytes: AsyncIterable<Buffer>, keep = false): Promise<Buffer> {
  const info = await readStreamOptimized(bytes, READ);
  const out = Buffer.alloc(keep ? info.capacity : 0);
  for await (const c of info.grains) if (keep) c.data.copy(out, c.offset);
  return out;
}

async function viaOva(ova: Buffer, keep = false): Promise<{ disk: Buffer; verified: number }> {
  let disk: Buffer | undefined;
  const r = await readOva(bufferStream(ova, 8191), {
    parseDescriptor: parseTestDescriptor,
    onFile: async (_f, content) => void (disk = await decode(content, keep)),
  });
  return { disk: disk!, verified: r.verified.length };
}

/** The error `fn` fails with, as "CODE: message"; the test fails if it succeeds or fails otherwise. */
async function refusal(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    if (isP2vError(e, 'BAD_VMDK') || isP2vError(e, 'TRUNCATED')) {
      expect(e.message).not.toContain('\n');
      return `${e.code}: ${e.message}`;
    }
    throw e;
  }
  return 'accepted';
}

async function cutEverywhere(vmdk: Buffer, source: Buffer, label: string): Promise<void> {
  const { starts, midGrains, dataEnd } = markers(vmdk);
  // Only qemu's files can be whole before their full length: past the last grain come zero sectors alone.
  const wholeFrom = label === 'qemu' ? dataEnd : vmdk.length;
  const cuts = new Set<number>();
  for (let c = 512; c < vmdk.length; c += 512) cuts.add(c);
  for (const s of starts) cuts.add(s + 6);
  for (const m of midGrains) cuts.add(m);
  expect(starts.length).toBeGreaterThanOrEqual(5);
  let refused = 0;
  let whole = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    const bytes = vmdk.subarray(0, cut);
    if (cut >= wholeFrom && cut % 512 === 0) {
      if (cut > wholeFrom + 512) continue; // more zero padding proves nothing new
      expect((await decode(bufferStream(bytes), true)).equals(source)).toBe(true);
      whole++;
      continue;
    }
    const why = `${label} cut at byte ${cut} of ${vmdk.length}`;
    expect(await refusal(() => decode(bufferStream(bytes, 4099))), why).not.toBe('accepted');
    expect(
      await refusal(async () => {
        const r = await viaOva(ovaOf(bytes, true));
        expect(r.verified).toBe(2); // the manifest matched: it is not what refuses the cut disk
      }),
      `${why}, OVA with a matching manifest`,
    ).not.toBe('accepted');
    expect(await refusal(() => viaOva(ovaOf(bytes, false))), `${why}, OVA without a manifest`).not.toBe('accepted');
    refused++;
  }
  expect(refused).toBeGreaterThan(50);
  // And whole, the same file is read back equal, bare and in both OVAs.
  expect((await decode(bufferStream(vmdk), true)).equals(source)).toBe(true);
  expect((await viaOva(ovaOf(vmdk, true), true)).disk.equals(source)).toBe(true);
  expect((await viaOva(ovaOf(vmdk, false), true)).disk.equals(source)).toBe(true);
  if (label === 'qemu') expect(whole).toBeGreaterThan(0);
}

describe('a streamOptimized VMDK cut at any point', () => {
  it('of ours (metadata at the end) is refused, bare and in an OVA with and without a manifest', async () => {
    await withTmpDir('vmdk-cut', async (dir) => {
      const raw = join(dir, 'src.raw');
      await makeImage(raw, CAPACITY, EXTENTS);
      const vmdk = join(dir, 'ours.vmdk');
      await writeAll(
        vmdk,
        writeStreamOptimized(
          fileContent(raw, CAPACITY, () => 1 << 20),
          { concurrency: 2 },
        ),
      );
      await cutEverywhere(await readFile(vmdk), await readFile(raw), 'ours');
    });
  });

  it('of qemu-img (tables up front, no end marker) is refused the same way', async () => {
    await needPrograms('qemu-img');
    await withTmpDir('vmdk-cut', async (dir) => {
      const raw = join(dir, 'src.raw');
      await makeImage(raw, CAPACITY, EXTENTS);
      const vmdk = join(dir, 'qemu.vmdk');
      await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
      const bytes = await readFile(vmdk);
      await cutEverywhere(bytes, await readFile(raw), 'qemu');

      // The tables up front are the list the grains are held against.
      const gt0 = bytes.readUInt32LE(Number(bytes.readBigUInt64LE(56)) * 512) * 512;
      const edited = (edit: (b: Buffer) => void) => {
        const b = Buffer.from(bytes);
        edit(b);
        return b;
      };
      const first = bytes.readUInt32LE(gt0);
      expect(await refusal(() => decode(bufferStream(edited((b) => b.writeUInt32LE(0, gt0)))))).toBe(
        `BAD_VMDK: VMDK grain marker at byte ${first * 512}: the grain at LBA 0 is not in the grain tables`,
      );
      expect(await refusal(() => decode(bufferStream(edited((b) => b.writeUInt32LE(first, gt0 + 100 * 4)))))).toBe(
        `BAD_VMDK: VMDK end-of-stream marker at byte ${markers(bytes).dataEnd} comes before the grain at LBA 12800 that its grain table lists (5 of 6 grains came)`,
      );
      const second = bytes.readUInt32LE(gt0 + 4);
      expect(
        await refusal(() =>
          decode(
            bufferStream(
              edited((b) => {
                b.writeUInt32LE(second, gt0);
                b.writeUInt32LE(first, gt0 + 4);
              }),
            ),
          ),
        ),
      ).toBe('BAD_VMDK: VMDK grain tables place the grains at other sectors than the stream carried them');
    });
  });
});
