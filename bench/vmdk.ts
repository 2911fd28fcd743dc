/**
 * VMDK bench: our streamOptimized writer and reader against qemu-img on the
 * same synthetic disk (bench/image.ts), in one run:
 *  - write: qemu-img convert -O vmdk -o subformat=streamOptimized (zlib level
 *    6, one thread) vs ours at level 6 and at our default level;
 *  - read: qemu-img convert -O raw of qemu's VMDK vs our reader on the same file;
 *  - output size vs qemu's, and our peak RSS (each of ours runs in a child).
 * The reader's output is compared with the source (qemu-img compare), so a
 * fast wrong answer cannot pass.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { rm, stat } from 'node:fs/promises';
import { DEFAULT_ENGINE, DEFAULT_LEVEL, READER_ENGINE, type ZlibEngine } from '../ovf/vmdk/index.js';
import { makeBenchImage } from './image.js';
import {
  bestOf,
  cpuText,
  formatBytes,
  interleaved,
  runsText,
  mibPerSec,
  runMeasured,
  runNodeChild,
  timed,
  type Bench,
  type BenchResult,
} from './harness.js';

const RSS_LIMIT = 256 * 1024 * 1024;
/** Rounds of the interleaved read comparison (more with --repeat). */
const READ_ROUNDS = 6;
const OTHER_ENGINE: ZlibEngine = DEFAULT_ENGINE === 'workers' ? 'threadpool' : 'workers';

export const vmdkBench: Bench = {
  name: 'vmdk',
  describe: 'streamOptimized VMDK writer and reader vs qemu-img',
  async run(ctx) {
    const raw = join(ctx.workDir, 'disk.raw');
    const mapPath = join(ctx.workDir, 'disk.map.json');
    const gen = await timed(() => makeBenchImage(raw, mapPath, ctx.size));
    const map = gen.value;
    const dataBytes = map.extents.reduce((a, e) => a + e.length, 0);
    ctx.log(
      `image: ${formatBytes(map.capacity)}, ${formatBytes(dataBytes)} data (½ random, ½ text), rest holes; made in ${gen.seconds.toFixed(1)} s`,
    );
    const conc = String(availableParallelism());
    const results: BenchResult[] = [];

    const qVmdk = join(ctx.workDir, 'qemu.vmdk');
    const qWrite = await bestOf(ctx.repeat, () =>
      runMeasured('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, qVmdk]),
    );
    const qSize = (await stat(qVmdk)).size;
    ctx.log(`qemu-img write: ${qWrite.seconds.toFixed(2)} s, ${cpuText(qWrite)}, ${formatBytes(qSize)}`);

    let peak = 0;
    // Level 6 is qemu's level: the like-for-like comparison and the size check. The others show what each choice buys.
    const writers: { tag: string; level: number; engine: ZlibEngine; target?: number }[] = [
      { tag: 'level 6', level: 6, engine: DEFAULT_ENGINE, target: 1.7 },
      { tag: `level 6, ${OTHER_ENGINE} engine`, level: 6, engine: OTHER_ENGINE },
      ...(DEFAULT_LEVEL === 6
        ? []
        : [{ tag: `level ${DEFAULT_LEVEL} (our default)`, level: DEFAULT_LEVEL, engine: DEFAULT_ENGINE }]),
    ];
    for (const [i, v] of writers.entries()) {
      const out = join(ctx.workDir, `ours-${i}.vmdk`);
      const w = await bestOf(ctx.repeat, () =>
        runNodeChild('vmdk-child.js', ['write', raw, mapPath, out, String(v.level), conc, v.engine]),
      );
      const size = (await stat(out)).size;
      await rm(out);
      peak = Math.max(peak, w.maxRss ?? 0);
      ctx.log(
        `ours write ${v.tag}: ${w.seconds.toFixed(2)} s, ${cpuText(w)}, ${formatBytes(size)}, peak RSS ${formatBytes(w.maxRss ?? 0)}`,
      );
      const sizeDiff = (size - qSize) / qSize;
      results.push({
        name: `write ${v.tag}`,
        ours: mibPerSec(map.capacity, w.seconds),
        theirs: mibPerSec(map.capacity, qWrite.seconds) + ' (qemu-img, level 6)',
        ratio: qWrite.seconds / w.seconds,
        ...(v.target ? { target: v.target } : {}),
        note:
          `size ${formatBytes(size)} = ${sizeDiff >= 0 ? '+' : ''}${(sizeDiff * 100).toFixed(2)} % vs qemu-img` +
          (v.level === 6 ? (Math.abs(sizeDiff) <= 0.02 ? ' (ok, within 2 %)' : ' (MISSED: over 2 %)') : ''),
      });
    }

    // Reads take seconds, so they run interleaved, several rounds (harness.ts says why).
    const qRaw = join(ctx.workDir, 'qemu-back.raw');
    const engines = [READER_ENGINE, READER_ENGINE === 'workers' ? 'threadpool' : 'workers'] as const;
    const oRaw = (engine: ZlibEngine) => join(ctx.workDir, `ours-back-${engine}.raw`);
    const measured = await interleaved(Math.max(READ_ROUNDS, ctx.repeat), [
      {
        name: 'qemu-img read',
        prepare: () => rm(qRaw, { force: true }),
        run: () => runMeasured('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', qVmdk, qRaw]),
      },
      ...engines.map((engine) => ({
        name: `ours read (${engine})`,
        prepare: () => rm(oRaw(engine), { force: true }),
        run: () => runNodeChild('vmdk-child.js', ['read', qVmdk, oRaw(engine), conc, engine]),
      })),
    ]);
    const [qRead, ...reads] = [measured[0]!, ...measured.slice(1)];
    await rm(qRaw, { force: true });
    ctx.log(`qemu-img read: ${runsText(qRead)}, ${cpuText(qRead)}`);
    for (const [i, engine] of engines.entries()) {
      const r = reads[i]!;
      peak = Math.max(peak, r.maxRss ?? 0);
      ctx.log(`ours read (${engine}): ${runsText(r)}, ${cpuText(r)}, peak RSS ${formatBytes(r.maxRss ?? 0)}`);
      await runMeasured('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', raw, oRaw(engine)]);
      await rm(oRaw(engine));
      results.push({
        name: `read${engine === READER_ENGINE ? '' : `, ${engine} engine`}`,
        ours: mibPerSec(map.capacity, r.seconds),
        theirs: mibPerSec(map.capacity, qRead.seconds) + ' (qemu-img → raw)',
        ratio: qRead.seconds / r.seconds,
        ...(engine === READER_ENGINE ? { target: 1.5 } : {}),
        note: `medians of ${r.runs.length} interleaved rounds; output identical to the source`,
      });
    }
    results.push({
      name: 'peak RSS (ours, worst child)',
      ours: formatBytes(peak),
      theirs: `qemu-img write ${qWrite.maxRss === null ? '?' : formatBytes(qWrite.maxRss)}, read ${qRead.maxRss === null ? '?' : formatBytes(qRead.maxRss)}`,
      ratio: RSS_LIMIT / peak,
      target: 1,
      note: `limit ${formatBytes(RSS_LIMIT)} (ratio = limit / ours)`,
    });
    return results;
  },
};
