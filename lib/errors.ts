/**
 * Typed errors. Every error a user can see carries a stable code, a one-line
 * message, and (where there is one) what the user must do next. The CLIs print
 * `p2v-<tool>: <message>` plus the hint and exit non-zero; stack traces are for
 * --debug only.
 */

import { printable, printableLines } from './text.js';

export type ErrorCode =
  | 'USAGE' // bad command line
  | 'MISSING_PROGRAM' // a needed host program is not installed
  | 'COMMAND_FAILED' // a host program exited non-zero
  | 'SOURCE_BUSY' // a source disk is mounted read-write
  | 'BAD_VMDK' // malformed or hostile VMDK
  | 'BAD_OVF' // malformed, unsupported or hostile OVF descriptor
  | 'BAD_OVA' // malformed or hostile OVA/tar stream
  | 'BAD_MANIFEST' // manifest syntax or digest mismatch
  | 'TRUNCATED' // input ended early
  | 'POLICY' // refused by a configured limit (disk size, free space)
  | 'NBD' // NBD protocol error
  | 'INSPECTION' // cannot understand the guest
  | 'FIXUP' // a fixup cannot be applied
  | 'HOOK_FAILED' // a site hook failed
  | 'SSH' // transport error, host key refused
  | 'IO' // filesystem or pipe error
  | 'INTERRUPTED'; // SIGINT / SIGTERM

export interface P2vErrorOptions {
  /** What the user should do next, one sentence. */
  hint?: string;
  cause?: unknown;
  /** The command line that failed, for COMMAND_FAILED. */
  command?: string;
  /** Last lines of the failed command's stderr. */
  stderrTail?: string;
}

export class P2vError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly command: string | undefined;
  readonly stderrTail: string | undefined;

  constructor(code: ErrorCode, message: string, opts: P2vErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'P2vError';
    this.code = code;
    this.hint = opts.hint;
    this.command = opts.command;
    this.stderrTail = opts.stderrTail;
  }
}

export function isP2vError(e: unknown, code?: ErrorCode): e is P2vError {
  return e instanceof P2vError && (code === undefined || e.code === code);
}

/** Exit status by error class: 2 for usage, 3 for refused input, 1 otherwise. */
export function exitCodeFor(e: unknown): number {
  if (!(e instanceof P2vError)) return 1;
  switch (e.code) {
    case 'USAGE':
      return 2;
    case 'BAD_VMDK':
    case 'BAD_OVF':
    case 'BAD_OVA':
    case 'BAD_MANIFEST':
    case 'TRUNCATED':
    case 'POLICY':
      return 3;
    case 'INTERRUPTED':
      return 130;
    default:
      return 1;
  }
}

/** The text a CLI prints for an error: one line, then the hint if any. */
export function formatError(tool: string, e: unknown, debug = false): string {
  const lines: string[] = [];
  if (e instanceof P2vError) {
    lines.push(`${tool}: ${printable(e.message)}`);
    if (e.stderrTail) lines.push(...printableLines(e.stderrTail).map((l) => `  | ${l}`));
    if (e.hint) lines.push(`${tool}: hint: ${printable(e.hint)}`);
  } else if (e instanceof Error) {
    lines.push(`${tool}: internal error: ${printable(e.message)}`);
  } else {
    lines.push(`${tool}: internal error: ${printable(String(e))}`);
  }
  if (debug && e instanceof Error && e.stack) lines.push(e.stack);
  return lines.join('\n');
}
