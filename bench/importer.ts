/**
 * Importer bench (issue 4): decoding a streamOptimized VMDK against qemu-img
 * convert -O raw of the same VMDK, in one run:
 *  - an OVA as p2v-export streams it (bench/importer-child.ts make-ova, our
 *    default level), its disk's VMDK bytes teed to a file for qemu-img;
 *  - qemu-img convert -f vmdk -O raw of that VMDK;
 *  - decode only: readStreamOptimized → the importer's sparse raw sink, in a
 *    child (the like-for-like comparison, target ≥ 1.5×);
 *  - the whole CLI: node bin/p2v-import.js --staging DIR --raw DIR < x.ova
 *    (tar parse, SHA-256 manifest, decode, write, place), under GNU time;
 *  - peak RSS of the CLI on a 20 GiB sparse disk (bench/spread-image.ts).
 * Every raw output is checked against the source with qemu-img compare.
 * Throughputs count the image's data bytes.
 */
import { spawn } from 'node:child_process';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_LEVEL } from '../ovf/vmdk/index.js';
import { makeBenchImage, type ImageMap } from './image.js';
import { makeSpreadImage, RSS_CAPACITY } from './spread-image.js';
import {
  bestOf,
  interleaved,
  runsText,
  cpuText,
  formatBytes,
  mibPerSec,
  runMeasured,
  runNodeChild,
  timed,
  type Bench,
  type BenchContext,
  type BenchResult,
  type ProcessRun,
} from './harness.js';
import { cpuRatio } from './ratios.js';

const RSS_LIMIT = 256 * 1024 * 1024;
const DECODE_TARGET = 1.5;
/** Rounds of the interleaved decode comparison (more with --repeat). */
const DECODE_ROUNDS = 6;
const GNU_TIME = '/usr/bin/time';
const P2V_IMPORT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'p2v-import.js');

function dataOf(map: ImageMap): number {
  return map.extents.reduce((a, e) => a + e.length, 0);
}

/**
 * p2v-import with the OVA on its standard input, as the SSH forced command
 * gets it, under GNU time for peak RSS and CPU. Returns the raw disk written.
 */
async function runImportCli(ova: string, workDir: string, tag: string): Promise<ProcessRun & { raw: string }> {
  const staging = join(workDir, `staging-${tag}`);
  const rawDir = join(workDir, `raw-${tag}`);
  await rm(staging, { recursive: true, force: true });
  await rm(rawDir, { recursive: true, force: true });
  await mkdir(staging);
  let withTime = true;
  try {
    await stat(GNU_TIME);
  } catch {
    withTime = false;
  }
  const argv = [process.execPath, P2V_IMPORT, '--staging', staging, '--raw', rawDir, '--progress', 'none', '--quiet'];
  const cmd = withTime ? [GNU_TIME, '-f', 'P2V_BENCH_MAXRSS_KIB=%M CPU=%U+%S', ...argv] : argv;
  const input = await open(ova, 'r');
  const t0 = process.hrtime.bigint();
  let stderr = '';
  let code: number | null;
  try {
    code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(cmd[0]!, cmd.slice(1), { stdio: [input.fd, 'ignore', 'pipe'] });
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', resolve);
    });
  } finally {
    await input.close();
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (code !== 0) throw new Error(`p2v-import exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
  const m = /P2V_BENCH_MAXRSS_KIB=(\d+) CPU=([\d.]+)\+([\d.]+)/.exec(stderr);
  const files = await readdir(rawDir);
  if (files.length !== 1)
    throw new Error(`p2v-import --raw wrote ${files.length} files, expected one: ${files.join(' ')}`);
  await rm(staging, { recursive: true, force: true });
  return {
    seconds,
    maxRss: m ? Number(m[1]) * 1024 : null,
    cpu: m ? Number(m[2]) + Number(m[3]) : null,
    stdout: '',
    raw: join(rawDir, files[0]!),
  };
}

async function sameAsSource(source: string, out: string): Promise<void> {
  await runMeasured('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, out]);
}

async function makeOva(
  ctx: BenchContext,
  raw: string,
  mapPath: string,
  tag: string,
): Promise<{ ova: string; vmdk: string; report: Record<string, unknown>; seconds: number }> {
  const ova = join(ctx.workDir, `${tag}.ova`);
  const vmdk = join(ctx.workDir, `${tag}.vmdk`);
  const r = await runNodeChild('importer-child.js', ['make-ova', raw, mapPath, ova, vmdk, String(DEFAULT_LEVEL)]);
  return { ova, vmdk, report: r.report, seconds: r.seconds };
}

export const importerBench: Bench = {
  name: 'importer',
  describe: 'streamOptimized VMDK → sparse raw (decode only, and the whole p2v-import CLI) vs qemu-img convert -O raw',
  async run(ctx) {
    const raw = join(ctx.workDir, 'disk.raw');
    const mapPath = join(ctx.workDir, 'disk.map.json');
    const gen = await timed(() => makeBenchImage(raw, mapPath, ctx.size));
    const map = gen.value;
    const data = dataOf(map);
    ctx.log(
      `image: ${formatBytes(map.capacity)}, ${formatBytes(data)} data (½ random, ½ text), rest holes; made in ${gen.seconds.toFixed(1)} s`,
    );
    const made = await makeOva(ctx, raw, mapPath, 'disk');
    ctx.log(
      `OVA (stream mode, level ${DEFAULT_LEVEL}): ${formatBytes(made.report.ovaBytes as number)}, ` +
        `VMDK ${formatBytes(made.report.vmdkBytes as number)}; made in ${made.seconds.toFixed(1)} s`,
    );
    const results: BenchResult[] = [];

    // Decodes take seconds, so they run interleaved, several rounds (harness.ts says why).
    const qRaw = join(ctx.workDir, 'qemu.raw');
    const oRaw = join(ctx.workDir, 'ours.raw');
    const decodes = await interleaved(Math.max(DECODE_ROUNDS, ctx.repeat), [
      {
        name: 'qemu-img → raw',
        prepare: () => rm(qRaw, { force: true }),
        run: () => runMeasured('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', made.vmdk, qRaw]),
      },
      // qemu-img convert's default cache mode (unsafe) never flushes; our sink fsyncs like every importer output must.
      {
        name: 'qemu-img -t writeback → raw',
        prepare: () => rm(qRaw, { force: true }),
        run: () => runMeasured('qemu-img', ['convert', '-t', 'writeback', '-f', 'vmdk', '-O', 'raw', made.vmdk, qRaw]),
      },
      {
        name: 'ours decode',
        prepare: () => rm(oRaw, { force: true }),
        run: () => runNodeChild('importer-child.js', ['decode', made.vmdk, oRaw]),
      },
    ]);
    const [q, qSync, d] = [decodes[0]!, decodes[1]!, decodes[2]!];
    await rm(qRaw, { force: true });
    ctx.log(`qemu-img → raw: ${runsText(q)}, ${cpuText(q)}, peak RSS ${formatBytes(q.maxRss ?? 0)}`);
    ctx.log(`qemu-img -t writeback → raw (fdatasync at the end): ${runsText(qSync)}, ${cpuText(qSync)}`);
    const theirs = `${mibPerSec(data, q.seconds)}, ${cpuText(q)} (qemu-img → raw)`;
    await sameAsSource(raw, oRaw);
    await rm(oRaw);
    ctx.log(`ours decode: ${runsText(d)}, ${cpuText(d)}, peak RSS ${formatBytes(d.maxRss ?? 0)}`);
    results.push({
      name: 'decode only (VMDK → sparse raw)',
      ours: `${mibPerSec(data, d.seconds)}, ${cpuText(d)}`,
      theirs,
      ratio: q.seconds / d.seconds,
      target: DECODE_TARGET,
      note: `${cpuRatio(q, d)}; medians of ${d.runs.length} interleaved rounds; output identical to the source; peak RSS ${formatBytes(d.maxRss ?? 0)}`,
    });
    results.push({
      name: 'decode only, both flushing',
      ours: `${mibPerSec(data, d.seconds)}, ${cpuText(d)}`,
      theirs: `${mibPerSec(data, qSync.seconds)}, ${cpuText(qSync)} (qemu-img -t writeback → raw)`,
      ratio: qSync.seconds / d.seconds,
      note: 'our sink fsyncs; qemu-img only flushes with -t writeback',
    });

    const c = await bestOf(ctx.repeat, () => runImportCli(made.ova, ctx.workDir, 'main'));
    await sameAsSource(raw, c.raw);
    await rm(dirname(c.raw), { recursive: true, force: true });
    ctx.log(`p2v-import CLI: ${c.seconds.toFixed(2)} s, ${cpuText(c)}, peak RSS ${formatBytes(c.maxRss ?? 0)}`);
    results.push({
      name: 'p2v-import CLI (OVA on stdin → --raw)',
      ours: `${mibPerSec(data, c.seconds)}, ${cpuText(c)}`,
      theirs,
      ratio: q.seconds / c.seconds,
      note: `${cpuRatio(q, c)}; also tar, SHA-256 of ${formatBytes(made.report.ovaBytes as number)}, node start; output identical; peak RSS ${formatBytes(c.maxRss ?? 0)}`,
    });
    await rm(made.ova);
    await rm(made.vmdk);

    // The 20 GiB disk: the same data spread thin, through the whole CLI.
    const bigRaw = join(ctx.workDir, 'big.raw');
    const bigMap = join(ctx.workDir, 'big.map.json');
    const big = await makeSpreadImage(raw, map, bigRaw, bigMap, RSS_CAPACITY);
    await rm(raw);
    const bigOva = await makeOva(ctx, bigRaw, bigMap, 'big');
    await rm(bigOva.vmdk);
    const b = await runImportCli(bigOva.ova, ctx.workDir, 'big');
    await sameAsSource(bigRaw, b.raw);
    await rm(dirname(b.raw), { recursive: true, force: true });
    await rm(bigOva.ova);
    await rm(bigRaw);
    ctx.log(
      `p2v-import CLI, ${formatBytes(big.capacity)} disk with ${formatBytes(dataOf(big))} data: ` +
        `${b.seconds.toFixed(2)} s, ${cpuText(b)}, peak RSS ${formatBytes(b.maxRss ?? 0)}`,
    );
    results.push({
      name: `peak RSS, p2v-import, ${formatBytes(big.capacity)} disk`,
      ours: b.maxRss === null ? '? (install GNU time)' : formatBytes(b.maxRss),
      theirs: '',
      ...(b.maxRss === null ? {} : { ratio: RSS_LIMIT / b.maxRss, target: 1 }),
      note: `limit ${formatBytes(RSS_LIMIT)} (ratio = limit / ours); ${formatBytes(dataOf(big))} data; output identical`,
    });
    return results;
  },
};
