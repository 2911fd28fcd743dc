/**
 * Exporter bench (issue 7): the exporter's disk path against qemu-img reading
 * the same nbdkit copy-on-write overlay (exporter/overlay.ts), in one run:
 *  - ours: openDiskContent(socket) → writeStreamOptimized → bytes dropped, in
 *    a child process (bench/exporter-child.ts), at zlib level 6 (qemu's) and at
 *    our default level;
 *  - qemu-img convert -O vmdk -o subformat=streamOptimized of the overlay's
 *    nbd+unix URI into a temporary file (it needs a seekable output);
 *  - nbdcopy of the overlay to null:, the raw read ceiling;
 *  - our peak RSS on a 20 GiB sparse disk (bench/spread-image.ts).
 * Throughputs count data bytes (the overlay's non-hole extents): holes cost
 * every tool next to nothing.
 */
import { join } from 'node:path';
import { rm, stat } from 'node:fs/promises';
import { openOverlay, type Overlay } from '../exporter/overlay.js';
import { DEFAULT_LEVEL } from '../ovf/vmdk/index.js';
import { makeBenchImage, type ImageMap } from './image.js';
import { makeSpreadImage, RSS_CAPACITY } from './spread-image.js';
import {
  bestOf,
  cpuText,
  formatBytes,
  mibPerSec,
  runMeasured,
  runNodeChild,
  timed,
  type Bench,
  type BenchContext,
  type BenchResult,
} from './harness.js';
import { cpuRatio } from './ratios.js';

const RSS_LIMIT = 256 * 1024 * 1024;
const WRITE_TARGET = 1.7;

async function withOverlay<T>(ctx: BenchContext, image: string, fn: (ov: Overlay) => Promise<T>): Promise<T> {
  const ov = await openOverlay(image, { workDir: ctx.workDir });
  try {
    return await fn(ov);
  } finally {
    await ov.close();
  }
}

function dataOf(map: ImageMap): number {
  return map.extents.reduce((a, e) => a + e.length, 0);
}

export const exporterBench: Bench = {
  name: 'exporter',
  describe: 'overlay → streamOptimized VMDK (openDiskContent + writer) vs qemu-img reading the same nbdkit overlay',
  async run(ctx) {
    const raw = join(ctx.workDir, 'disk.raw');
    const mapPath = join(ctx.workDir, 'disk.map.json');
    const gen = await timed(() => makeBenchImage(raw, mapPath, ctx.size));
    const map = gen.value;
    const data = dataOf(map);
    ctx.log(
      `image: ${formatBytes(map.capacity)}, ${formatBytes(data)} data (½ random, ½ text), rest holes; made in ${gen.seconds.toFixed(1)} s`,
    );
    const results: BenchResult[] = [];
    let peak = 0;

    await withOverlay(ctx, raw, async (ov) => {
      ctx.log(`overlay: nbdkit --filter=cow file on ${ov.uri}`);
      const copy = await bestOf(ctx.repeat, () => runMeasured('nbdcopy', [ov.uri, 'null:']));
      ctx.log(`nbdcopy → null: ${copy.seconds.toFixed(2)} s, ${cpuText(copy)}`);

      const qVmdk = join(ctx.workDir, 'qemu.vmdk');
      const q = await bestOf(ctx.repeat, () =>
        runMeasured('qemu-img', [
          'convert',
          '-f',
          'raw',
          '-O',
          'vmdk',
          '-o',
          'subformat=streamOptimized',
          ov.uri,
          qVmdk,
        ]),
      );
      const qSize = (await stat(qVmdk)).size;
      await rm(qVmdk);
      ctx.log(
        `qemu-img → vmdk (level 6): ${q.seconds.toFixed(2)} s, ${cpuText(q)}, ${formatBytes(qSize)}, peak RSS ${formatBytes(q.maxRss ?? 0)}`,
      );

      const levels = DEFAULT_LEVEL === 6 ? [6] : [6, DEFAULT_LEVEL];
      for (const level of levels) {
        const o = await bestOf(ctx.repeat, () => runNodeChild('exporter-child.js', [ov.socket, String(level)]));
        const bytesOut = o.report.bytesOut as number;
        if (o.report.dataBytes !== data)
          throw new Error(`block status found ${String(o.report.dataBytes)} data bytes, the image has ${data}`);
        peak = Math.max(peak, o.maxRss ?? 0);
        ctx.log(
          `ours level ${level}: ${o.seconds.toFixed(2)} s, ${cpuText(o)}, ${formatBytes(bytesOut)}, peak RSS ${formatBytes(o.maxRss ?? 0)}`,
        );
        const sizeDiff = (bytesOut - qSize) / qSize;
        results.push({
          name: level === 6 ? 'export level 6' : `export level ${level} (our default)`,
          ours: `${mibPerSec(data, o.seconds)}, ${cpuText(o)}`,
          theirs: `${mibPerSec(data, q.seconds)}, ${cpuText(q)} (qemu-img, level 6)`,
          ratio: q.seconds / o.seconds,
          ...(level === 6 ? { target: WRITE_TARGET } : {}),
          note:
            `${cpuRatio(q, o)}; VMDK ${formatBytes(bytesOut)} = ${sizeDiff >= 0 ? '+' : ''}${(sizeDiff * 100).toFixed(2)} % vs qemu-img; ` +
            `${((100 * copy.seconds) / o.seconds).toFixed(0)} % of the time is NBD reading (nbdcopy)`,
        });
      }
      results.push({
        name: 'read ceiling (nbdcopy → null:)',
        ours: '',
        theirs: `${mibPerSec(data, copy.seconds)}, ${cpuText(copy)}`,
        note: `peak RSS ${copy.maxRss === null ? '?' : formatBytes(copy.maxRss)}`,
      });
    });

    // The 20 GiB disk: the same data spread thin, at the level p2v-export uses by default.
    const bigRaw = join(ctx.workDir, 'big.raw');
    const big = await makeSpreadImage(raw, map, bigRaw, join(ctx.workDir, 'big.map.json'), RSS_CAPACITY);
    await rm(raw);
    const bigData = dataOf(big);
    await withOverlay(ctx, bigRaw, async (ov) => {
      const o = await runNodeChild('exporter-child.js', [ov.socket, String(DEFAULT_LEVEL)]);
      if (o.report.dataBytes !== bigData)
        throw new Error(`block status found ${String(o.report.dataBytes)} data bytes, the image has ${bigData}`);
      ctx.log(
        `ours level ${DEFAULT_LEVEL}, ${formatBytes(big.capacity)} disk with ${formatBytes(bigData)} data: ` +
          `${o.seconds.toFixed(2)} s, ${cpuText(o)}, peak RSS ${formatBytes(o.maxRss ?? 0)}`,
      );
      results.push({
        name: `peak RSS, ${formatBytes(big.capacity)} disk`,
        ours: formatBytes(o.maxRss ?? 0),
        theirs: '',
        ratio: RSS_LIMIT / (o.maxRss ?? Infinity),
        target: 1,
        note: `limit ${formatBytes(RSS_LIMIT)} (ratio = limit / ours); ${formatBytes(bigData)} data; worst at ${formatBytes(map.capacity)}: ${formatBytes(peak)}`,
      });
    });
    await rm(bigRaw);
    return results;
  },
};
