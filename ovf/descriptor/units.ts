/**
 * DSP0004 programmatic units ("byte * 2^30") and the informal spellings
 * producers write instead ("MegaBytes", "KB"), turned into a byte multiplier.
 */
import { P2vError } from '../../lib/errors.js';

/** Informal unit names, all binary: VirtualBox's "MegaBytes" means MiB. */
const NAMED: Readonly<Record<string, number>> = {
  b: 1,
  byte: 1,
  bytes: 1,
  octet: 1,
  octets: 1,
  kb: 2 ** 10,
  kib: 2 ** 10,
  kilobyte: 2 ** 10,
  kilobytes: 2 ** 10,
  kibibyte: 2 ** 10,
  kibibytes: 2 ** 10,
  mb: 2 ** 20,
  mib: 2 ** 20,
  megabyte: 2 ** 20,
  megabytes: 2 ** 20,
  mebibyte: 2 ** 20,
  mebibytes: 2 ** 20,
  gb: 2 ** 30,
  gib: 2 ** 30,
  gigabyte: 2 ** 30,
  gigabytes: 2 ** 30,
  gibibyte: 2 ** 30,
  gibibytes: 2 ** 30,
  tb: 2 ** 40,
  tib: 2 ** 40,
  terabyte: 2 ** 40,
  terabytes: 2 ** 40,
  tebibyte: 2 ** 40,
  tebibytes: 2 ** 40,
};

function bad(units: string): P2vError {
  return new P2vError('BAD_OVF', `unknown allocation units "${units}" in the OVF descriptor`, {
    hint: 'expected bytes written as "byte", "byte * 2^20", "byte * 1024 * 1024" or "MegaBytes"',
  });
}

/** One factor of a programmatic unit: "1024", "2^20" or "10^3". */
function factor(token: string, units: string): number {
  const m = /^(\d+)(?:\^(\d+))?$/.exec(token);
  if (!m) throw bad(units);
  const value = m[2] === undefined ? Number(m[1]) : Number(m[1]) ** Number(m[2]);
  if (!Number.isSafeInteger(value) || value <= 0) throw bad(units);
  return value;
}

/**
 * Bytes per unit: "byte * 2^30" → 1073741824, "MegaBytes" → 1048576,
 * "byte * 1024 * 1024" → 1048576. Throws BAD_OVF for anything else,
 * including units that are not a whole number of bytes.
 */
export function parseAllocationUnits(units: string): number {
  const text = units.trim().replace(/\s+/g, ' ');
  const named = NAMED[text.toLowerCase()];
  if (named !== undefined) return named;
  // "byte * 2^20", "byte*1024*1024", "byte * 2^30 / 8": base unit then factors.
  const parts = text.split(/\s*([*/])\s*/);
  const base = parts[0]?.toLowerCase();
  if (base !== 'byte' && base !== 'bytes' && base !== 'octet') throw bad(units);
  let value = 1;
  for (let i = 1; i < parts.length; i += 2) {
    const op = parts[i];
    const arg = parts[i + 1];
    if (arg === undefined || arg === '') throw bad(units);
    const f = factor(arg, units);
    if (op === '*') value *= f;
    else if (op === '/' && value % f === 0) value /= f;
    else throw bad(units);
    if (!Number.isSafeInteger(value)) throw bad(units);
  }
  return value;
}
