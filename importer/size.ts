/**
 * Sizes on the command line ("100G", "512M", "1T", plain bytes) and in
 * messages. Suffixes are binary (K = 1024), as qemu-img and Ganeti read them.
 */
import { P2vError } from '../lib/errors.js';
import { formatBytes } from '../lib/progress.js';

const UNITS: Record<string, number> = { '': 1, B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

export function parseSize(text: string, option = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?\s*$/i.exec(text);
  const unit = m ? UNITS[m[2]!.toUpperCase()] : undefined;
  const n = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new P2vError('USAGE', `invalid ${option} "${text}"`, {
      hint: 'give a size such as 100G, 512M or a number of bytes',
    });
  }
  return n;
}

/** "20.0 GiB (21474836480 bytes)": readable and exact. */
export function describeSize(bytes: number): string {
  return `${formatBytes(bytes)} (${bytes} bytes)`;
}

/** Ganeti sizes are MiB; a disk never shrinks, so round up. */
export function toMiBRoundedUp(bytes: number): number {
  return Math.ceil(bytes / 2 ** 20);
}
