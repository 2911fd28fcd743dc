/**
 * Deltas for the importer's tests: a changed copy of a raw disk, and a delta
 * OVA of it against a stager's block map, written with ovf/delta's writer
 * (the format's own encoder; the exporter's use of it is tested apart) and
 * packed by GNU tar with a sha256sum-style manifest.
 */
import { createReadStream } from 'node:fs';
import { copyFile, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  deltaFormatUri,
  digestBlocks,
  readBlockMap,
  writeDeltaMember,
  type BlockMapHeader,
} from '../../../ovf/delta/index.js';
import type { DataChunk } from '../../../ovf/types.js';
import { execa } from 'execa';
import { cliArgv } from '../../helpers/cli.js';
import { descriptorXml, tarOva } from '../fixtures.js';

/** `p2v-import --staging STAGING --block-map NAME > file` (the map is binary). */
export async function fetchBlockMap(staging: string, name: string, file: string): Promise<void> {
  const [node, script] = cliArgv('p2v-import');
  const r = await execa(node!, [script!, '--staging', staging, '--block-map', name], {
    encoding: 'buffer',
    env: { P2V_DEBUG: '' },
  });
  await writeFile(file, r.stdout as Uint8Array);
}

/** `src` copied to `dst`, then each patch written (a Buffer at an offset: new data, or zeros over old data). */
export async function changedCopy(src: string, dst: string, patches: [number, Buffer][]): Promise<void> {
  await copyFile(src, dst);
  const fh = await open(dst, 'r+');
  try {
    for (const [off, data] of patches) await fh.write(data, 0, data.length, off);
  } finally {
    await fh.close();
  }
}

/** Pseudo-random bytes (incompressible, like most changed data), never all zero. */
export function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff || 7;
  }
  return b;
}

async function* rawChunks(path: string, capacity: number): AsyncGenerator<DataChunk> {
  const fh = await open(path, 'r');
  try {
    for (let off = 0; off < capacity; off += 1024 * 1024) {
      const buf = Buffer.alloc(Math.min(1024 * 1024, capacity - off));
      await fh.read(buf, 0, buf.length, off);
      yield { offset: off, data: buf };
    }
  } finally {
    await fh.close();
  }
}

export interface DeltaOvaSpec {
  /** The new disks (raw files) and their capacities. */
  raws: { path: string; capacity: number }[];
  /** The stager's block map file. */
  map: string;
  /** The descriptor's machine name (and the base named in ovf:format unless `base` is given). */
  name: string;
  base?: string;
  /** Override a disk's stated base digest. */
  baseDigest?: string;
}

/** A delta OVA in `dir`; returns its path and the header of the map it was made against. */
export async function makeDeltaOva(dir: string, spec: DeltaOvaSpec): Promise<{ ova: string; header: BlockMapHeader }> {
  const map = await readBlockMap(createReadStream(spec.map));
  const { header } = map;
  const base = spec.base ?? spec.name;
  const names: string[] = [];
  for (const [i, r] of spec.raws.entries()) {
    const member = writeDeltaMember(
      {
        index: i,
        capacity: r.capacity,
        blockSize: header.blockSize,
        base,
        baseDigest: spec.baseDigest ?? header.disks[i]!.digest,
      },
      digestBlocks(rawChunks(r.path, r.capacity), r.capacity, header.blockSize),
      map.entries(i),
    );
    const name = `disk${i + 1}.delta`;
    const fh = await open(join(dir, name), 'w');
    for await (const b of member.bytes) await fh.write(b);
    await fh.close();
    names.push(name);
  }
  const format = (i: number) =>
    deltaFormatUri({ base, blockSize: header.blockSize, baseDigest: spec.baseDigest ?? header.disks[i]!.digest });
  await writeFile(
    join(dir, 'delta.ovf'),
    descriptorXml({
      name: spec.name,
      disks: spec.raws.map((r, i) => ({ href: names[i]!, capacity: r.capacity, format: format(i) })),
    }),
  );
  const ova = join(dir, 'delta.ova');
  await tarOva(dir, ova, ['delta.ovf', ...names], 'delta.mf');
  return { ova, header };
}
