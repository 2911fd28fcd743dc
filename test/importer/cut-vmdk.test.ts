/**
 * Issue 13's repro, through the p2v-import command: a streamOptimized VMDK
 * whose header says the grain directory is at the end (our writer's layout,
 * and VMware's), cut right after its first grain. Before, it imported with
 * exit 0 and one grain of three, with a manifest that matched the cut bytes
 * and with none at all: silent data loss. Now both are refused, one line,
 * exit 3, and nothing is left in staging or in the outputs.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRawChunks } from '../../importer/disk-sink.js';
import { writeStreamOptimized } from '../../ovf/vmdk/index.js';
import { needPrograms } from '../helpers/programs.js';
import { descriptorXml, makeRawDisk, MiB, runImport, tarOva } from './fixtures.js';

let work = '';
let vmdk: Buffer;

/** Byte offset just past the first grain (marker + compressed data, padded to a sector). */
function endOfFirstGrain(v: Buffer): number {
  const overHead = Number(v.readBigUInt64LE(64));
  const first = overHead * 512;
  const size = v.readUInt32LE(first + 8);
  return first + Math.ceil((12 + size) / 512) * 512;
}

beforeAll(async () => {
  await needPrograms('tar');
  work = await mkdtemp(join(tmpdir(), 'p2v-cut-vmdk-'));
  const raw = join(work, 'src.raw');
  await makeRawDisk(raw, 4 * MiB);
  const parts: Buffer[] = [];
  for await (const b of writeStreamOptimized({ capacity: 4 * MiB, chunks: readRawChunks(raw, 4 * MiB) })) parts.push(b);
  vmdk = Buffer.concat(parts);
  // GD_AT_END: the header's gdOffset is 0xffffffffffffffff.
  expect(vmdk.readBigUInt64LE(56)).toBe(0xffffffffffffffffn);
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('p2v-import refuses a GD_AT_END VMDK cut after its first grain', () => {
  for (const manifest of [true, false]) {
    it(manifest ? 'with a manifest that matches the cut bytes' : 'with no manifest', async () => {
      const dir = join(work, manifest ? 'mf' : 'nomf');
      await mkdir(dir);
      const cut = vmdk.subarray(0, endOfFirstGrain(vmdk));
      expect(cut.length).toBeLessThan(vmdk.length);
      await writeFile(join(dir, 'disk1.vmdk'), cut);
      await writeFile(join(dir, 'vm.ovf'), descriptorXml({ disks: [{ href: 'disk1.vmdk', capacity: 4 * MiB }] }));
      const ova = join(dir, 'vm.ova');
      await tarOva(dir, ova, ['vm.ovf', 'disk1.vmdk'], manifest ? 'vm.mf' : undefined);
      if (manifest) expect(await readFile(join(dir, 'vm.mf'), 'utf8')).toContain('SHA256(disk1.vmdk)=');
      const staging = join(dir, 'staging');
      const out = join(dir, 'raw');
      const r = await runImport(['--staging', staging, '--raw', out, ova]);
      expect(r.exitCode).toBe(3);
      const lines = r.stderr.trim().split('\n');
      expect(lines[0]).toMatch(/^p2v-import: .*(disk1\.vmdk|VMDK|grain).*/);
      expect(lines.filter((l) => !l.startsWith('p2v-import: hint: '))).toHaveLength(1);
      expect(await readdir(staging).catch(() => [])).toEqual([]);
      expect(await readdir(out).catch(() => [])).toEqual([]);
    });
  }
});
