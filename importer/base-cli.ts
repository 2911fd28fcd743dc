/** The command-line side of bases: the --list table, --block-map's output, telling an import id from a name. */
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { printable } from '../lib/text.js';
import { formatDuration } from '../lib/progress.js';
import { blockMapOf, type BaseEntry } from './base.js';
import { IMPORT_ID, PARTIAL_SUFFIX } from './staging.js';

export function isImportId(name: string): boolean {
  return IMPORT_ID.test(name.endsWith(PARTIAL_SUFFIX) ? name.slice(0, -PARTIAL_SUFFIX.length) : name);
}

/** `--list`'s second table: one base per line. */
export function formatBaseList(bases: BaseEntry[]): string {
  const rows = [['BASE', 'DISKS', 'AGE', 'STATE']];
  for (const b of bases)
    rows.push([
      printable(b.name),
      b.disks !== undefined ? String(b.disks) : '-',
      b.ageSeconds !== undefined ? formatDuration(b.ageSeconds) : '-',
      b.state,
    ]);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  '))
    .join('\n');
}

/** `--block-map NAME`: the map on standard output. */
export async function writeBlockMapOut(staging: string, name: string): Promise<void> {
  await pipeline(Readable.from(await blockMapOf(staging, name)), process.stdout, { end: false });
}
