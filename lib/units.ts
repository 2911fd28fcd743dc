/** Sizes given on command lines: "512", "64M", "20G", "1.5T" (binary units, as Ganeti's). */
import { P2vError } from './errors.js';

const MULT: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?\s*$/i.exec(text);
  if (!m)
    throw new P2vError('USAGE', `${what} "${text}" is not a size`, {
      hint: 'use a number with an optional K, M, G or T suffix (binary units)',
    });
  const v = Math.round(Number(m[1]) * MULT[m[2]!.toUpperCase()]!);
  if (!Number.isSafeInteger(v)) throw new P2vError('USAGE', `${what} "${text}" is too large`);
  return v;
}
