/**
 * The measured side of bench/vmdk.ts, run in its own node process so its
 * peak RSS is ours alone:
 *   vmdk-child.js write RAW MAP.json OUT.vmdk LEVEL CONCURRENCY ENGINE
 *   vmdk-child.js read IN.vmdk OUT.raw CONCURRENCY ENGINE
 * MAP.json lists the raw image's data extents, as an NBD block-status map
 * would: the writer is fed only those, in 1 MiB chunks.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { createRawFileSink } from '../importer/disk-sink.js';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DataChunk, DiskContent } from '../ovf/types.js';
import { readStreamOptimized, writeStreamOptimized, type ZlibEngine } from '../ovf/vmdk/index.js';
import { reportFromChild } from './harness.js';

const CHUNK = 1024 * 1024;

interface ImageMap {
  capacity: number;
  extents: { offset: number; length: number }[];
}

async function write(
  raw: string,
  mapPath: string,
  out: string,
  level: number,
  concurrency: number,
  engine: ZlibEngine,
): Promise<void> {
  const map = JSON.parse(await readFile(mapPath, 'utf8')) as ImageMap;
  async function* chunks(): AsyncGenerator<DataChunk> {
    const fh = await open(raw, 'r');
    try {
      for (const e of map.extents) {
        for (let pos = e.offset; pos < e.offset + e.length; pos += CHUNK) {
          const n = Math.min(CHUNK, e.offset + e.length - pos);
          const data = Buffer.allocUnsafe(n);
          const { bytesRead } = await fh.read(data, 0, n, pos);
          yield { offset: pos, data: data.subarray(0, bytesRead) };
        }
      }
    } finally {
      await fh.close();
    }
  }
  const content: DiskContent = { capacity: map.capacity, chunks: chunks() };
  const vmdk = writeStreamOptimized(content, { level, concurrency, engine });
  await pipeline(Readable.from(vmdk), createWriteStream(out));
  reportFromChild({ bytesOut: vmdk.stats.bytesOut, grains: vmdk.stats.grainsWritten });
}

async function read(vmdkPath: string, out: string, concurrency: number, engine: ZlibEngine): Promise<void> {
  const info = await readStreamOptimized(
    // 1 MiB reads, as p2v-import reads an OVA file (importer/cli.ts).
    createReadStream(vmdkPath, { highWaterMark: CHUNK }),
    { concurrency, engine },
  );
  // Into the importer's own sink (gathered writevs, several in flight, fsync at the end): what p2v-import runs.
  const sink = await createRawFileSink(out, info.capacity);
  let grains = 0;
  try {
    for await (const grain of info.grains) {
      await sink.write(grain);
      grains++;
    }
    await sink.finish();
  } catch (e) {
    await sink.abort();
    throw e;
  }
  reportFromChild({ capacity: info.capacity, grains });
}

const [mode, ...args] = process.argv.slice(2);
const main =
  mode === 'write'
    ? write(args[0]!, args[1]!, args[2]!, Number(args[3]), Number(args[4]), args[5] as ZlibEngine)
    : mode === 'read'
      ? read(args[0]!, args[1]!, Number(args[2]), args[3] as ZlibEngine)
      : Promise.reject(
          new Error('usage: vmdk-child.js write RAW MAP OUT LEVEL CONCURRENCY ENGINE | read IN OUT CONCURRENCY ENGINE'),
        );
main.catch((e: unknown) => {
  process.stderr.write(`vmdk-child: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
