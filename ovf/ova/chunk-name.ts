/**
 * Names of the members a chunked file travels as (DSP0243 "chunkSize"):
 * `disk1.vmdk.000000000`, `disk1.vmdk.000000001`, … nine decimal digits.
 */

export const MAX_CHUNKS = 1_000_000_000;

export function chunkName(href: string, index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_CHUNKS)
    throw new RangeError(`chunk index ${index} out of range`);
  return `${href}.${String(index).padStart(9, '0')}`;
}

/** `{ href, index }` when `name` has the chunk suffix, else null. */
export function parseChunkName(name: string): { href: string; index: number } | null {
  const m = /^(.+)\.(\d{9})$/.exec(name);
  return m ? { href: m[1]!, index: Number(m[2]) } : null;
}
