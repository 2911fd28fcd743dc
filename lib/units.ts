/**
 * Sizes in bytes, read and written the one way every tool shares: "512",
 * "64M", "20G", "1.5TiB" on command lines (binary units, as qemu-img and
 * Ganeti read them), "20.0 GiB" in messages.
 *
 * One parser serves both CLIs; what legitimately differs between their
 * options is explicit: whether 0 is a size (`allowZero`) and how a fraction
 * of a byte is settled (`rounding`). The wording of the error is the
 * caller's (`readSize` gives the reason, `parseSize` words it for the
 * exporter's options, importer/size.ts for the importer's).
 */
import { P2vError } from './errors.js';

export interface SizeRules {
  /** Accept "0" (default true). */
  allowZero?: boolean;
  /** How "1.3K" becomes whole bytes (default 'round'). */
  rounding?: 'round' | 'floor';
}

/** Why a text is not a size under the rules. */
export type SizeProblem = 'not-a-size' | 'too-large' | 'zero';

export type SizeReading = { ok: true; bytes: number } | { ok: false; problem: SizeProblem };

const MULT: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/** A number, then an optional K/M/G/T/P with an optional "B"/"iB", or a bare "B". */
const SIZE = /^\s*(\d+(?:\.\d+)?)\s*(?:([KMGTP])(?:i?B)?|B)?\s*$/i;

/** The one size parser: the bytes, or why the text is not a size. */
export function readSize(text: string, rules: SizeRules = {}): SizeReading {
  const m = SIZE.exec(text);
  if (!m) return { ok: false, problem: 'not-a-size' };
  const exact = Number(m[1]) * MULT[(m[2] ?? '').toUpperCase()]!;
  const bytes = rules.rounding === 'floor' ? Math.floor(exact) : Math.round(exact);
  if (!Number.isSafeInteger(bytes)) return { ok: false, problem: 'too-large' };
  if (bytes === 0 && rules.allowZero === false) return { ok: false, problem: 'zero' };
  return { ok: true, bytes };
}

/** readSize for an option, with the error a user sees ("--memory "lots" is not a size"). */
export function parseSize(text: string, what = 'size', rules: SizeRules = {}): number {
  const r = readSize(text, rules);
  if (r.ok) return r.bytes;
  if (r.problem === 'too-large') throw new P2vError('USAGE', `${what} "${text}" is too large`);
  if (r.problem === 'zero')
    throw new P2vError('USAGE', `${what} "${text}" is zero`, { hint: 'give a size above 0, e.g. 64M' });
  throw new P2vError('USAGE', `${what} "${text}" is not a size`, {
    hint: 'use a number with an optional K, M, G or T suffix (binary units)',
  });
}

export interface ByteFormat {
  /**
   * 'fixed' (default): one decimal above bytes ("20.0 GiB", "512 B"), the
   * progress meter's steady width. 'compact': one decimal below 10 only
   * ("20 GiB", "1.5 GiB"), for listings a person scans.
   */
  style?: 'fixed' | 'compact';
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** A byte count for people, in binary units. */
export function formatBytes(n: number, format: ByteFormat = {}): string {
  let v = n;
  let i = 0;
  while (v >= 1024 && i < BYTE_UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  if (format.style === 'compact') return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${BYTE_UNITS[i]}`;
  return `${v.toFixed(i === 0 ? 0 : 1)} ${BYTE_UNITS[i]}`;
}
