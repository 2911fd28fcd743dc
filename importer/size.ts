/**
 * The importer's reading of sizes on its command line ("100G", "512M", "1T",
 * plain bytes) and its way of stating them in messages. The parser is
 * lib/units.ts's; what is the importer's own: a size here is a limit or a
 * disk, so 0 is refused, a fraction of a byte is dropped (a limit is never
 * raised by rounding), and the message reads like its other options'
 * ("invalid --disk-size "12X"").
 */
import { P2vError } from '../lib/errors.js';
import { formatBytes, readSize } from '../lib/units.js';

export function parseSize(text: string, option = 'size'): number {
  const r = readSize(text, { allowZero: false, rounding: 'floor' });
  if (!r.ok) {
    throw new P2vError('USAGE', `invalid ${option} "${text}"`, {
      hint: 'give a size such as 100G, 512M or a number of bytes',
    });
  }
  return r.bytes;
}

/** "20.0 GiB (21474836480 bytes)": readable and exact. */
export function describeSize(bytes: number): string {
  return `${formatBytes(bytes)} (${bytes} bytes)`;
}

/** Ganeti sizes are MiB; a disk never shrinks, so round up. */
export function toMiBRoundedUp(bytes: number): number {
  return Math.ceil(bytes / 2 ** 20);
}
