/**
 * The bench harness: time a step, run a step in a child process to read its
 * peak RSS, time a host program, and print results as one table of ratios
 * against targets. A bench module (bench/vmdk.ts, later exporter/importer
 * benches) exports a Bench; bench/run.ts runs the ones asked for.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { access } from 'node:fs/promises';
import { formatBytes } from '../lib/units.js';
import { requireProgram } from '../lib/run.js';

export interface BenchContext {
  /** Scratch directory for this run (removed afterwards unless --keep). */
  workDir: string;
  /** Size of the synthetic input in bytes (--size). */
  size: number;
  /** Runs per measurement, the fastest kept (--repeat). */
  repeat: number;
  log(line: string): void;
}

/** One measured comparison. `ratio` is "how many times better we are" (> 1 is better). */
export interface BenchResult {
  name: string;
  ours: string;
  theirs?: string;
  ratio?: number;
  /** Pass when ratio ≥ target (or ≤ for `lowerIsBetter`). */
  target?: number;
  note?: string;
}

export interface Bench {
  name: string;
  describe: string;
  run(ctx: BenchContext): Promise<BenchResult[]>;
}

export interface Timed<T> {
  seconds: number;
  value: T;
}

export async function timed<T>(fn: () => Promise<T>): Promise<Timed<T>> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, value };
}

export interface ProcessRun {
  seconds: number;
  /** User + system CPU seconds of the process and all its threads (null when unknown). */
  cpu: number | null;
  /** Peak resident set of the process, in bytes (null when it cannot be measured). */
  maxRss: number | null;
  stdout: string;
}

const GNU_TIME = '/usr/bin/time';

/**
 * Flush every dirty page on the machine before a measured step starts. A step
 * that leaves its output unflushed (qemu-img convert's default cache mode)
 * would otherwise hand its writeback to whichever step runs next: on these
 * machines that moved 1 GiB of qemu-img's writeback into our decode's time.
 */
export async function settleWriteback(): Promise<void> {
  const { code, stderr } = await spawnCollect('sync', []);
  if (code !== 0) throw new Error(`sync exited ${code}: ${stderr.trim()}`);
}

/**
 * Run a program to completion, timing it; its peak RSS comes from GNU time
 * when installed (Debian package "time"), else null.
 */
export async function runMeasured(program: string, args: string[]): Promise<ProcessRun> {
  const path = await requireProgram(program);
  let withTime = false;
  try {
    await access(GNU_TIME);
    withTime = true;
  } catch {
    /* no GNU time: RSS unknown */
  }
  const argv = withTime ? [GNU_TIME, '-f', 'P2V_BENCH_MAXRSS_KIB=%M CPU=%U+%S', path, ...args] : [path, ...args];
  await settleWriteback();
  const t0 = process.hrtime.bigint();
  const { stdout, stderr, code } = await spawnCollect(argv[0]!, argv.slice(1));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (code !== 0)
    throw new Error(`${program} ${args.join(' ')} exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
  const m = /P2V_BENCH_MAXRSS_KIB=(\d+) CPU=([\d.]+)\+([\d.]+)/.exec(stderr);
  return { seconds, maxRss: m ? Number(m[1]) * 1024 : null, cpu: m ? Number(m[2]) + Number(m[3]) : null, stdout };
}

/** Run one of our bench children (dist/bench/<script>.js) in a fresh node; it reports its own peak RSS. */
export async function runNodeChild(
  script: string,
  args: string[],
): Promise<ProcessRun & { report: Record<string, unknown> }> {
  const here = dirname(fileURLToPath(import.meta.url));
  await settleWriteback();
  const t0 = process.hrtime.bigint();
  const { stdout, stderr, code } = await spawnCollect(process.execPath, [join(here, script), ...args]);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (code !== 0)
    throw new Error(`${script} ${args.join(' ')} exited ${code}: ${stderr.trim().split('\n').slice(-5).join(' | ')}`);
  const last = stdout.trim().split('\n').at(-1) ?? '{}';
  const report = JSON.parse(last) as Record<string, unknown>;
  return {
    seconds,
    maxRss: typeof report.maxRss === 'number' ? report.maxRss : null,
    cpu: typeof report.cpu === 'number' ? report.cpu : null,
    stdout,
    report,
  };
}

/** For children: print the final JSON line the parent reads, with this process's peak RSS and CPU time (all threads). */
export function reportFromChild(fields: Record<string, unknown>): void {
  const u = process.resourceUsage();
  process.stdout.write(
    JSON.stringify({ ...fields, maxRss: u.maxRSS * 1024, cpu: (u.userCPUTime + u.systemCPUTime) / 1e6 }) + '\n',
  );
}

/**
 * Run `fn` `times` times and keep the fastest run: on a shared machine the
 * fastest is the least disturbed. Peak RSS is the worst seen.
 */
export async function bestOf<T extends ProcessRun>(times: number, fn: () => Promise<T>): Promise<T> {
  let best: T | null = null;
  let worstRss = 0;
  for (let i = 0; i < Math.max(1, times); i++) {
    const r = await fn();
    worstRss = Math.max(worstRss, r.maxRss ?? 0);
    if (!best || r.seconds < best.seconds) best = r;
  }
  return { ...best!, maxRss: best!.maxRss === null ? null : worstRss };
}

/** One step of an interleaved comparison: `prepare` (untimed, e.g. removing the last output) then the measured `run`. */
export interface Step<T extends ProcessRun = ProcessRun> {
  name: string;
  prepare?: () => Promise<void>;
  run: () => Promise<T>;
}

/**
 * Run the steps in turn, `rounds` times, rotating the order each round
 * (A B C, B C A, C A B, …), and keep each step's median run. On the VMs these
 * benches run on, how fast a step writes 1 GiB depends on what the step
 * before it left behind: the step right after qemu-img's (whose gigabyte of
 * dirty pages the settling `sync` has just pushed to the host) was the slow
 * one in most rounds, whichever it was, and freed page cache is cheap to
 * reuse only for a couple of seconds. A fixed order can favour either side
 * by 2×; rotating gives every step every position, and the median keeps one
 * lucky or unlucky round from deciding. Peak RSS is the worst seen; `runs`
 * keeps every time, in round order, for the log.
 */
export async function interleaved<T extends ProcessRun>(
  rounds: number,
  steps: Step<T>[],
): Promise<(T & { runs: number[] })[]> {
  const seen: T[][] = steps.map(() => []);
  for (let r = 0; r < Math.max(1, rounds); r++) {
    for (let k = 0; k < steps.length; k++) {
      const i = (r + k) % steps.length;
      const step = steps[i]!;
      await step.prepare?.();
      seen[i]!.push(await step.run());
    }
  }
  return seen.map((runs) => {
    const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
    const median = sorted[(sorted.length - 1) >> 1]!;
    const worstRss = Math.max(...runs.map((x) => x.maxRss ?? 0));
    return {
      ...median,
      maxRss: median.maxRss === null ? null : worstRss,
      runs: runs.map((x) => x.seconds),
    };
  });
}

/** "2.41 s (runs 2.41, 1.62, 2.87)" for the log. */
export function runsText(r: { seconds: number; runs: number[] }): string {
  return `${r.seconds.toFixed(2)} s median (runs ${r.runs.map((x) => x.toFixed(2)).join(', ')})`;
}

export function cpuText(r: ProcessRun): string {
  return r.cpu === null ? 'CPU ?' : `CPU ${r.cpu.toFixed(2)} s`;
}

function spawnCollect(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ stdout, stderr, code }));
  });
}

export function mibPerSec(bytes: number, seconds: number): string {
  return `${(bytes / 1048576 / seconds).toFixed(1)} MiB/s`;
}

export { formatBytes };

/** Print results as an aligned table; returns how many targets were missed. */
export function printResults(title: string, results: BenchResult[], out: (line: string) => void = console.log): number {
  let missed = 0;
  const rows = results.map((r) => {
    const ratio = r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}×`;
    let verdict = '';
    if (r.ratio !== undefined && r.target !== undefined) {
      const ok = r.ratio >= r.target;
      if (!ok) missed++;
      verdict = `${ok ? 'ok' : 'MISSED'} (target ≥ ${r.target}×)`;
    }
    return [r.name, r.ours, r.theirs ?? '', ratio, verdict, r.note ?? ''];
  });
  const head = ['measure', 'ours', 'reference', 'ratio', 'verdict', 'note'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const fmt = (row: string[]) =>
    row
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  out(`\n== ${title}`);
  out(fmt(head));
  out(fmt(widths.map((w) => '-'.repeat(w))));
  for (const row of rows) out(fmt(row));
  return missed;
}
