/**
 * The measured side of bench/exporter.ts, run in its own node process so its
 * peak RSS is ours alone:
 *   exporter-child.js SOCKET LEVEL
 * The exporter's disk path as p2v-export runs it, minus the OVA framing:
 * openDiskContent (NBD block status, then pipelined reads of the data
 * extents) → writeStreamOptimized at LEVEL → bytes counted and dropped, as a
 * fast consumer (a LAN ssh pipe) would take them.
 */
import { openDiskContent } from '../exporter/disk-content.js';
import { writeStreamOptimized } from '../ovf/vmdk/index.js';
import { reportFromChild } from './harness.js';

async function main(socket: string, level: number): Promise<void> {
  const content = await openDiskContent(socket);
  try {
    const vmdk = writeStreamOptimized(content, { level });
    let bytes = 0;
    for await (const b of vmdk) bytes += b.length;
    if (bytes !== vmdk.stats.bytesOut) throw new Error(`counted ${bytes} bytes, writer says ${vmdk.stats.bytesOut}`);
    reportFromChild({ bytesOut: bytes, dataBytes: content.dataBytes, grains: vmdk.stats.grainsWritten });
  } finally {
    await content.close();
  }
}

const [socket, level] = process.argv.slice(2);
(socket && level
  ? main(socket, Number(level))
  : Promise.reject(new Error('usage: exporter-child.js SOCKET LEVEL'))
).catch((e: unknown) => {
  process.stderr.write(`exporter-child: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
