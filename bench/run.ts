/**
 * bench entry point (scripts/bench.sh builds, then runs this):
 *   node dist/bench/run.js [--size 2G] [--repeat 1] [--only vmdk] [--workdir DIR] [--keep] [--strict]
 * Runs each registered bench in a scratch directory and prints its table.
 * --strict exits 1 when a target is missed (for CI on quiet machines).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { onExit } from '../lib/exit-actions.js';
import { printResults, type Bench, type BenchResult } from './harness.js';
import { vmdkBench } from './vmdk.js';
import { exporterBench } from './exporter.js';
import { importerBench } from './importer.js';
import { fitBench } from './fit.js';
import { deltaBench } from './delta.js';

/** Every bench; add new ones here. */
const BENCHES: Bench[] = [vmdkBench, exporterBench, importerBench, fitBench, deltaBench];

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(s.trim());
  if (!m) throw new Error(`--size: cannot read "${s}" (examples: 2G, 256M)`);
  const exp = { '': 0, K: 1, M: 2, G: 3, T: 4 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return Math.floor(Number(m[1]) * 1024 ** exp);
}

/** One line per target over every bench run: the figure to quote, and whether it was met. */
function printSummary(rows: { bench: string; result: BenchResult }[], load: string): void {
  if (rows.length === 0) return;
  const table = rows.map(({ bench, result: r }) => [
    bench,
    r.name,
    r.ratio === undefined ? '?' : `${r.ratio.toFixed(2)}×`,
    `≥ ${r.target}×`,
    r.ratio !== undefined && r.ratio >= r.target! ? 'met' : 'NOT MET',
  ]);
  const head = ['bench', 'measure', 'ratio', 'target', 'verdict'];
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const fmt = (row: string[]) =>
    row
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  console.log(`\n== summary (load average ${load} at end, ${availableParallelism()} CPUs)`);
  console.log(fmt(head));
  console.log(fmt(widths.map((w) => '-'.repeat(w))));
  for (const row of table) console.log(fmt(row));
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '2G' },
      repeat: { type: 'string', default: '1' },
      only: { type: 'string' },
      workdir: { type: 'string' },
      keep: { type: 'boolean', default: false },
      strict: { type: 'boolean', default: false },
    },
  });
  const size = parseSize(values.size!);
  const chosen = values.only ? BENCHES.filter((b) => values.only!.split(',').includes(b.name)) : BENCHES;
  if (chosen.length === 0)
    throw new Error(`--only: no bench named ${values.only} (have: ${BENCHES.map((b) => b.name).join(', ')})`);
  let missed = 0;
  const summary: { bench: string; result: BenchResult }[] = [];
  const load = () =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  for (const bench of chosen) {
    const workDir = await mkdtemp(join(values.workdir ?? process.env.TMPDIR ?? tmpdir(), `p2v-bench-${bench.name}-`));
    // Registered so Ctrl-C removes it too (the overlays' nbdkit are registered the same way by openOverlay).
    // Retries: on Ctrl-C a child killed by the same signal may still be closing a file in it.
    const removeWork = onExit(`remove ${workDir}`, () =>
      rm(workDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }),
    );
    try {
      console.log(`# ${bench.name}: ${bench.describe}`);
      console.log(`  machine: ${availableParallelism()} CPUs, load average ${load()} at start`);
      const repeat = Number(values.repeat);
      if (!Number.isInteger(repeat) || repeat < 1) throw new Error('--repeat: a positive integer');
      const results = await bench.run({ workDir, size, repeat, log: (l) => console.log(`  ${l}`) });
      console.log(`  load average ${load()} at end (a loaded machine shrinks every parallel speed-up)`);
      missed += printResults(bench.name, results);
      for (const result of results) if (result.target !== undefined) summary.push({ bench: bench.name, result });
    } finally {
      if (values.keep) {
        removeWork.cancel();
        console.log(`  kept ${workDir}`);
      } else await removeWork.run();
    }
  }
  printSummary(summary, load());
  if (missed) console.log(`\n${missed} target(s) missed${values.strict ? '' : ' (not failing: pass --strict to)'}`);
  return values.strict && missed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
