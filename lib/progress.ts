/**
 * Progress of long work, for people and for programs.
 *
 * - A `Progress` meter counts one phase's work (bytes, or items such as
 *   filesystems) against its expected total. On a TTY it redraws one line
 *   with percentage, rate and ETA at most 4 times a second; in 'json' mode
 *   each update is one `ProgressUpdateEvent` line.
 * - A `PhaseReporter` wraps the phases of a run: a `PhaseEvent` when each
 *   starts and ends (JSON mode), and meters for the phases that have a count.
 *
 * JSON lines go to a descriptor of their own (`--progress-fd N`, opened with
 * `openProgressFd`), never to stderr, where the text log is: a program
 * reading them must not have to tell the two apart. The schema below is the
 * contract, documented field by field in docs/user-guide.md.
 *
 * Callbacks that report progress (`OnProgress`) always pass the running total
 * of the work done so far in their unit of work, never an increment: a meter
 * is fed with `update(total so far)`, or `add(n)` where the caller itself
 * counts increments.
 */
import { createWriteStream, fstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { P2vError } from './errors.js';
import { formatBytes } from './units.js';

export type ProgressMode = 'tty' | 'json' | 'none';

/** A progress callback: `doneSoFar` is the running total for the unit of work, not an increment. */
export type OnProgress = (doneSoFar: number) => void;

/** {"type":"phase",...}: a phase of the run starts or ends. */
export interface PhaseEvent {
  type: 'phase';
  phase: string;
  state: 'start' | 'end';
  /** With state 'end': false when the phase failed (the run then ends with an error). */
  ok?: boolean;
  /** With state 'end': wall-clock seconds the phase took. */
  seconds?: number;
}

/** {"type":"progress",...}: how far a phase with a count has come. */
export interface ProgressUpdateEvent {
  type: 'progress';
  phase: string;
  /** What done/total count: bytes, or items (the phase's own things, e.g. filesystems). */
  unit: 'bytes' | 'items';
  /** Work done so far; never more than total. */
  done: number;
  /** Work expected; null when not known. */
  total: number | null;
  /** Units per second since the phase's meter started (rounded). */
  rate: number;
  /** Seconds left at that rate; null when not known. */
  eta: number | null;
  /** True on the phase's last update. */
  final: boolean;
}

export type ProgressEvent = PhaseEvent | ProgressUpdateEvent;

export interface ProgressOptions {
  phase: string;
  /** Expected work; a meter never shows done above it (it grows to done if the estimate was low). */
  total?: number;
  mode: ProgressMode;
  /** Where lines go (default: stderr for 'tty'; give the --progress-fd stream for 'json'). */
  out?: Writable;
  /** JSON lines also go here, whatever the mode (a TTY line on stderr and JSON on --progress-fd at once). */
  jsonOut?: Writable;
  /** Minimum milliseconds between two updates. */
  intervalMs?: number;
  /** What is counted (default 'bytes'). */
  unit?: 'bytes' | 'items';
  /** For unit 'items' on a TTY: their name ("filesystems"). */
  itemName?: string;
}

/** One JSON line, or nothing when the stream is gone (a reader that left does not stop the work). */
function writeEvent(out: Writable, ev: ProgressEvent): void {
  if (out.destroyed || out.writableEnded) return;
  out.write(JSON.stringify(ev) + '\n');
}

export class Progress {
  private done = 0;
  private last = 0;
  private total: number | undefined;
  private finished = false;
  private readonly start = Date.now();
  private readonly out: Writable;

  constructor(private readonly opts: ProgressOptions) {
    this.out = opts.out ?? process.stderr;
    this.total = opts.total;
  }

  get bytesDone(): number {
    return this.done;
  }

  /** Count `n` more units done. */
  add(n: number): void {
    this.update(this.done + n);
  }

  /** Set the running total of units done. */
  update(doneSoFar: number): void {
    this.done = doneSoFar;
    if (this.total !== undefined && this.done > this.total) this.total = this.done;
    const now = Date.now();
    if (now - this.last >= (this.opts.intervalMs ?? 250)) {
      this.last = now;
      this.render(false);
    }
  }

  /** The last update (once). */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.render(true);
  }

  private render(final: boolean): void {
    const { mode, phase } = this.opts;
    const total = this.total;
    const unit = this.opts.unit ?? 'bytes';
    if (mode === 'none' && !this.opts.jsonOut) return;
    const secs = Math.max((Date.now() - this.start) / 1000, 0.001);
    const rate = this.done / secs;
    const rounded = (eta: number | undefined): ProgressUpdateEvent => ({
      type: 'progress',
      phase,
      unit,
      done: this.done,
      total: total ?? null,
      rate: Math.round(rate),
      eta: eta === undefined ? null : Math.round(eta),
      final,
    });
    const eta =
      total !== undefined ? (final ? 0 : rate > 0 ? Math.max(0, (total - this.done) / rate) : undefined) : undefined;
    if (this.opts.jsonOut) writeEvent(this.opts.jsonOut, rounded(eta));
    if (mode === 'json') {
      writeEvent(this.out, rounded(eta));
      return;
    }
    if (mode === 'none') return;
    let line: string;
    if (unit === 'items') {
      // The log says each item as it goes; a line redrawn between log lines would end up glued to them.
      if (!final) return;
      line = `${phase}: ${this.done}${total !== undefined ? '/' + total : ''} ${this.opts.itemName ?? 'items'}`;
    } else {
      const pct = total ? ` ${((100 * this.done) / total).toFixed(1).padStart(5)}%` : '';
      line =
        `${phase}:${pct} ${formatBytes(this.done)}${total !== undefined ? ' / ' + formatBytes(total) : ''}` +
        `  ${formatBytes(rate)}/s${eta !== undefined && !final ? '  ETA ' + formatDuration(eta) : ''}`;
    }
    this.out.write(`\r${line.padEnd(78)}${final ? '\n' : ''}`);
  }
}

export interface PhaseReporterOptions {
  mode: ProgressMode;
  /** Where lines go (default stderr; for 'json', the --progress-fd stream). */
  out?: Writable;
  /** JSON lines also go here, whatever the mode. */
  jsonOut?: Writable;
  intervalMs?: number;
}

/**
 * The phases of one run. `run(phase, body)` brackets the body with start and
 * end events (end with ok:false when it throws); `meter(...)` gives the
 * phase's Progress on the same output. On a TTY only meters draw: the text
 * log already names each phase as it starts.
 */
export class PhaseReporter {
  constructor(readonly opts: PhaseReporterOptions) {}

  get mode(): ProgressMode {
    return this.opts.mode;
  }

  event(ev: PhaseEvent): void {
    if (this.opts.jsonOut) writeEvent(this.opts.jsonOut, ev);
    if (this.opts.mode === 'json') writeEvent(this.opts.out ?? process.stderr, ev);
  }

  async run<T>(phase: string, body: () => Promise<T>): Promise<T> {
    const t0 = Date.now();
    this.event({ type: 'phase', phase, state: 'start' });
    let ok = false;
    try {
      const r = await body();
      ok = true;
      return r;
    } finally {
      this.event({ type: 'phase', phase, state: 'end', ok, seconds: (Date.now() - t0) / 1000 });
    }
  }

  meter(phase: string, total: number | undefined, opts: Pick<ProgressOptions, 'unit' | 'itemName'> = {}): Progress {
    return new Progress({
      phase,
      total,
      mode: this.opts.mode,
      out: this.opts.out,
      jsonOut: this.opts.jsonOut,
      intervalMs: this.opts.intervalMs,
      ...opts,
    });
  }
}

/**
 * A Writable over descriptor `fd` for JSON progress lines (`--progress-fd N`),
 * checked now: it must be open, and not 0-2 (stdin, the stream or the
 * report on stdout, the text log on stderr). A reader that goes away (EPIPE)
 * silences progress; it does not fail the run.
 */
export function openProgressFd(fd: number, option = '--progress-fd'): Writable {
  if (!Number.isInteger(fd) || fd < 0)
    throw new P2vError('USAGE', `${option} ${fd} is not a file descriptor number`, {
      hint: `give a descriptor opened by the shell, e.g. ${option} 3 3>progress.jsonl`,
    });
  if (fd <= 2)
    throw new P2vError(
      'USAGE',
      `${option} ${fd} is standard ${['input', 'output', 'error'][fd]}: JSON progress needs a descriptor of its own`,
      { hint: `use ${option} 3 with 3>FILE (or 3>&1 to read it through a pipe when stdout is free)` },
    );
  // Node and libuv hold descriptors of their own (epoll, eventfd: anonymous inodes): never one of the caller's.
  let target: string | undefined;
  let flags: number | undefined;
  try {
    target = readlinkSync(`/proc/self/fd/${fd}`);
    const m = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    flags = m ? parseInt(m[1]!, 8) : undefined;
  } catch {
    target = undefined;
  }
  // libuv's own wake-up and signal pipes have both ends here: a pipe whose read end we hold is not a way out.
  const ownPipe = target?.startsWith('pipe:') && readEndHeld(target, fd);
  if (target === undefined || target.startsWith('anon_inode:') || ownPipe)
    throw new P2vError('USAGE', `${option} ${fd}: descriptor ${fd} is not open`, {
      hint: `open it in the shell that runs the command, e.g. ${option} ${fd} ${fd}>progress.jsonl`,
    });
  if (flags !== undefined && (flags & 3) === 0)
    throw new P2vError('USAGE', `${option} ${fd}: descriptor ${fd} is open for reading only`, {
      hint: `open it for writing, e.g. ${fd}>progress.jsonl`,
    });
  const st = fstatSync(fd);
  const out: Writable =
    st.isFIFO() || st.isSocket()
      ? new Socket({ fd, readable: false, writable: true })
      : createWriteStream('', { fd, autoClose: true });
  out.on('error', () => out.destroy());
  return out;
}

function readEndHeld(pipe: string, except: number): boolean {
  for (const name of readdirSync('/proc/self/fd')) {
    const other = Number(name);
    if (other === except) continue;
    try {
      if (readlinkSync(`/proc/self/fd/${other}`) !== pipe) continue;
      const m = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${other}`, 'utf8'));
      if (m && (parseInt(m[1]!, 8) & 3) === 0) return true;
    } catch {
      /* closed meanwhile */
    }
  }
  return false;
}

/** End a progress stream and wait until its lines are written (before the process exits). */
export async function closeProgressOut(out: Writable): Promise<void> {
  if (out.destroyed || out.writableFinished) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 5000);
    const done = () => {
      clearTimeout(t);
      resolve();
    };
    out.once('error', done);
    out.end(done);
  });
}

export function formatDuration(secs: number): string {
  const s = Math.round(secs);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}
