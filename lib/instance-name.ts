/**
 * Ganeti instance names, one rule for the exporter (the name it writes into
 * the OVF) and the importer (the name it reads from the stream or --name).
 *
 * A name becomes a directory and file-name component on the stager and the
 * instance's name in Ganeti, so it must be what Ganeti accepts: a DNS host
 * name of lower-case letters, digits, '-' and '.', labels of 1–63
 * characters, 253 in all. A name from a guest or a stream is untrusted and
 * is reduced to that; an operator's --name is checked, never rewritten.
 */
import { P2vError } from './errors.js';

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** True when `name` is a valid Ganeti instance name. */
export function isValidInstanceName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((l) => LABEL.test(l));
}

/** Reduce an untrusted name to a valid one; undefined when nothing usable is left. */
export function sanitiseInstanceName(raw: string): string | undefined {
  const labels = raw
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .split('.')
    .map((l) =>
      l
        .replace(/-+/g, '-')
        .replace(/^-+|-+$/g, '')
        .slice(0, 63)
        .replace(/-+$/, ''),
    )
    .filter((l) => l.length > 0);
  let name = labels.join('.');
  while (name.length > 253) name = name.slice(0, name.lastIndexOf('.'));
  return isValidInstanceName(name) ? name : undefined;
}

/** Validate the operator's --name. */
export function checkInstanceName(name: string): string {
  if (!isValidInstanceName(name)) {
    throw new P2vError('USAGE', `invalid instance name "${name}"`, {
      hint: 'use a host name: lower-case letters, digits, "-" and "." (e.g. web1.example.org)',
    });
  }
  return name;
}
