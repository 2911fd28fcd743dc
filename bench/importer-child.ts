/**
 * The measured and preparatory sides of bench/importer.ts, each in its own
 * node process:
 *   importer-child.js make-ova RAW MAP.json OUT.ova OUT.vmdk LEVEL
 *     An OVA as p2v-export streams it (stream mode: chunked members, manifest
 *     last) of the raw image's data extents, fed in 1 MiB chunks as block
 *     status would give them. The disk's VMDK bytes are also teed to OUT.vmdk,
 *     so qemu-img converts exactly the VMDK the OVA carries.
 *   importer-child.js decode IN.vmdk OUT.raw
 *     The importer's decode path alone, as importer/stage-disk.ts runs it:
 *     readStreamOptimized → createRawFileSink (sparse, zero grains skipped,
 *     fsync at the end).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { createRawFileSink } from '../importer/disk-sink.js';
import { buildDescriptor } from '../ovf/descriptor/index.js';
import { writeOva } from '../ovf/ova/index.js';
import { DEFAULT_CHUNK_SIZE, FORMAT_URI, type DataChunk, type MachineDescription, type OvfFile } from '../ovf/types.js';
import { readStreamOptimized, writeStreamOptimized } from '../ovf/vmdk/index.js';
import type { ImageMap } from './image.js';
import { reportFromChild } from './harness.js';

const CHUNK = 1024 * 1024;
const NAME = 'bench';

async function* chunksOf(raw: string, map: ImageMap): AsyncGenerator<DataChunk> {
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

async function makeOva(raw: string, mapPath: string, ovaPath: string, vmdkPath: string, level: number): Promise<void> {
  const map = JSON.parse(await readFile(mapPath, 'utf8')) as ImageMap;
  const dataBytes = map.extents.reduce((a, e) => a + e.length, 0);
  const vmdk = writeStreamOptimized({ capacity: map.capacity, chunks: chunksOf(raw, map) }, { level });
  const tee = await open(vmdkPath, 'w');
  async function* teed(): AsyncGenerator<Buffer> {
    for await (const b of vmdk) {
      await tee.write(b);
      yield b;
    }
  }
  const machine = (files: OvfFile[]): MachineDescription => ({
    name: NAME,
    cpus: 1,
    memoryMiB: 512,
    files,
    disks: [
      {
        diskId: 'vmdisk1',
        fileRef: 'file1',
        capacity: map.capacity,
        populatedSize: dataBytes,
        format: 'vmdk-streamOptimized',
        formatUri: FORMAT_URI.streamOptimized,
        controller: 'scsi',
        unit: 0,
      },
    ],
    networks: ['default'],
    nics: [{ network: 'default', model: 'virtio' }],
    ganeti: { os: 'p2v-image+default', hypervisor: 'kvm', name: NAME, nics: [{}] },
    producer: 'ganeti-p2v',
  });
  const out = createWriteStream(ovaPath);
  try {
    const r = await writeOva({
      descriptorName: `${NAME}.ovf`,
      descriptor: (files) => buildDescriptor(machine(files), { chunked: true }),
      files: [{ id: 'file1', href: `${NAME}-disk1.vmdk`, content: teed() }],
      mode: 'stream',
      output: out,
      chunkSize: DEFAULT_CHUNK_SIZE,
    });
    out.end();
    await finished(out);
    reportFromChild({ ovaBytes: r.bytesWritten, vmdkBytes: vmdk.stats.bytesOut, dataBytes });
  } finally {
    out.destroy();
    await tee.close();
  }
}

async function decode(vmdkPath: string, rawPath: string): Promise<void> {
  const info = await readStreamOptimized(
    // 1 MiB reads, as p2v-import reads an OVA file (importer/cli.ts).
    createReadStream(vmdkPath, { highWaterMark: CHUNK }),
  );
  const sink = await createRawFileSink(rawPath, info.capacity);
  try {
    for await (const chunk of info.grains) await sink.write(chunk);
    await sink.finish();
  } catch (e) {
    await sink.abort();
    throw e;
  }
  reportFromChild({ capacity: info.capacity, dataBytes: sink.dataBytes });
}

const [mode, ...args] = process.argv.slice(2);
const main =
  mode === 'make-ova' && args.length === 5
    ? makeOva(args[0]!, args[1]!, args[2]!, args[3]!, Number(args[4]))
    : mode === 'decode' && args.length === 2
      ? decode(args[0]!, args[1]!)
      : Promise.reject(new Error('usage: importer-child.js make-ova RAW MAP OVA VMDK LEVEL | decode VMDK RAW'));
main.catch((e: unknown) => {
  process.stderr.write(`importer-child: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
