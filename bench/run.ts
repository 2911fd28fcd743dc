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
import { printResults, type Bench } from './harness.js';
import { vmdkBench } from './vmdk.js';

/** Every bench; add new ones here. */
const BENCHES: Bench[] = [vmdkBench];

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(s.trim());
  if (!m) throw new Error(`--size: cannot read "${s}" (examples: 2G, 256M)`);
  const exp = { '': 0, K: 1, M: 2, G: 3, T: 4 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return Math.floor(Number(m[1]) * 1024 ** exp);
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
  for (const bench of chosen) {
    const workDir = await mkdtemp(join(values.workdir ?? process.env.TMPDIR ?? tmpdir(), `p2v-bench-${bench.name}-`));
    try {
      const load = () =>
        loadavg()
          .map((l) => l.toFixed(2))
          .join(' ');
      console.log(`# ${bench.name}: ${bench.describe}`);
      console.log(`  machine: ${availableParallelism()} CPUs, load average ${load()} at start`);
      const repeat = Number(values.repeat);
      if (!Number.isInteger(repeat) || repeat < 1) throw new Error('--repeat: a positive integer');
      const results = await bench.run({ workDir, size, repeat, log: (l) => console.log(`  ${l}`) });
      console.log(`  load average ${load()} at end (a loaded machine shrinks every parallel speed-up)`);
      missed += printResults(bench.name, results);
    } finally {
      if (values.keep) console.log(`  kept ${workDir}`);
      else await rm(workDir, { recursive: true, force: true });
    }
  }
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
