/**
 * Progress of long work (bytes done of bytes expected). On a TTY a one-line
 * bar with rate and ETA is redrawn at most 4 times a second; with JSON output
 * each update is one JSON line: {"phase","done","total","rate","eta"}.
 */
import type { Writable } from 'node:stream';

export interface ProgressOptions {
  phase: string;
  total?: number;
  mode: 'tty' | 'json' | 'none';
  out?: Writable;
  /** Minimum milliseconds between two updates. */
  intervalMs?: number;
}

export class Progress {
  private done = 0;
  private last = 0;
  private readonly start = Date.now();
  private readonly out: Writable;

  constructor(private readonly opts: ProgressOptions) {
    this.out = opts.out ?? process.stderr;
  }

  get bytesDone(): number {
    return this.done;
  }

  add(bytes: number): void {
    this.done += bytes;
    const now = Date.now();
    if (now - this.last >= (this.opts.intervalMs ?? 250)) {
      this.last = now;
      this.render(false);
    }
  }

  finish(): void {
    this.render(true);
  }

  private render(final: boolean): void {
    const { mode, phase, total } = this.opts;
    if (mode === 'none') return;
    const secs = Math.max((Date.now() - this.start) / 1000, 0.001);
    const rate = this.done / secs;
    const eta = total && rate > 0 ? Math.max(0, (total - this.done) / rate) : undefined;
    if (mode === 'json') {
      this.out.write(
        JSON.stringify({
          phase,
          done: this.done,
          total: total ?? null,
          rate: Math.round(rate),
          eta: eta === undefined ? null : Math.round(eta),
          final,
        }) + '\n',
      );
      return;
    }
    const pct = total ? ` ${((100 * this.done) / total).toFixed(1).padStart(5)}%` : '';
    const line = `${phase}:${pct} ${formatBytes(this.done)}${total ? ' / ' + formatBytes(total) : ''}  ${formatBytes(rate)}/s${eta !== undefined ? '  ETA ' + formatDuration(eta) : ''}`;
    this.out.write(`\r${line.padEnd(78)}${final ? '\n' : ''}`);
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatDuration(secs: number): string {
  const s = Math.round(secs);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}
