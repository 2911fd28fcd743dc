import { printable } from './text.js';

/**
 * One log line per step, on stderr (stdout carries the OVA stream). Progress
 * events go elsewhere (lib/progress.ts: the TTY line, or JSON lines on --progress-fd).
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface LoggerOptions {
  tool: string;
  verbose?: boolean;
  quiet?: boolean;
  /** Where lines go; defaults to process.stderr. */
  sink?: (line: string) => void;
}

export function createLogger(opts: LoggerOptions): Logger {
  const sink = opts.sink ?? ((line: string) => process.stderr.write(line + '\n'));
  const emit = (level: LogLevel, msg: string) => {
    if (level === 'debug' && !opts.verbose) return;
    if (opts.quiet && (level === 'info' || level === 'debug')) return;
    const prefix = level === 'warn' ? 'warning: ' : level === 'error' ? 'error: ' : '';
    // Messages carry text from the stream and the guest: one message is one line.
    sink(`${opts.tool}: ${prefix}${printable(msg)}`);
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  };
}

/** A logger that remembers lines, for tests and for the final report. */
export function memoryLogger(tool = 'test'): Logger & { lines: string[] } {
  const lines: string[] = [];
  const l = createLogger({ tool, verbose: true, sink: (x) => lines.push(x) });
  return Object.assign(l, { lines });
}
