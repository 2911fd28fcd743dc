/**
 * The importer's choice of instance name. The name rules themselves are
 * lib/instance-name.ts's (shared with the exporter); what is the importer's:
 * which name wins (--name, else gnt:Name, else the VirtualSystem's), and that
 * a stream naming nothing usable is a bad descriptor.
 */
import { P2vError } from '../lib/errors.js';
import { checkInstanceName, sanitiseInstanceName } from '../lib/instance-name.js';

/** The name to use: --name, else the descriptor's Ganeti name, else its VirtualSystem name. */
export function chooseInstanceName(given: string | undefined, candidates: (string | undefined)[]): string {
  if (given !== undefined) return checkInstanceName(given);
  for (const c of candidates) {
    const s = c === undefined ? undefined : sanitiseInstanceName(c);
    if (s) return s;
  }
  throw new P2vError('BAD_OVF', 'the OVF descriptor names no usable instance name', {
    hint: 'give one with --name',
  });
}
