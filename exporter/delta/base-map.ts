/**
 * --base-map FILE: the stager's block map of this machine's base (p2v-import
 * --block-map NAME). A regular file is checked whole before anything is
 * sent, then read again as a stream while the overlay is digested (never
 * held in memory). A pipe (`--base-map <(ssh stager p2v-import --block-map
 * NAME)`) is read once: its header is checked before anything is sent, each
 * disk's entries as they are compared (a damaged map then fails the export
 * at that disk's end, and the importer refuses the cut stream) — so the map
 * travels while the overlay starts and the disks are inspected.
 */
import { createReadStream, statSync } from 'node:fs';
import { P2vError } from '../../lib/errors.js';
import { readBlockMap, verifyBlockMap, type BlockMapHeader, type BlockMapReader } from '../../ovf/delta/index.js';

export interface BaseMapSource {
  /** For messages: the file, or "the stager's map". */
  readonly where: string;
  /** A fresh read of the map, from its start (for a `once` source: the one read, wherever it is). */
  open(): Promise<BlockMapReader>;
  /** It can be read only once (a pipe): checkBaseMap reads its header only. */
  readonly once?: boolean;
}

function cannotRead(where: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'EACCES')
    return new P2vError('USAGE', `cannot read --base-map ${where}: ${(e as Error).message}`, {
      hint: 'give the file written by p2v-import --block-map NAME',
    });
  return e;
}

export function baseMapFile(path: string): BaseMapSource {
  const read = () => readBlockMap(createReadStream(path, { highWaterMark: 256 * 1024 }), `base map ${path}`);
  let kind: 'file' | 'pipe' = 'file';
  try {
    if (!statSync(path).isFile()) kind = 'pipe';
  } catch {
    // Reported by the first read, with the remedy.
  }
  return kind === 'file' ? { where: path, open: read } : readOnce(path, read);
}

/** A map that can be read only once (a pipe, an ssh channel): every open() is that one read. */
export function readOnce(where: string, read: () => Promise<BlockMapReader>): BaseMapSource {
  let one: Promise<BlockMapReader> | undefined;
  return { where, once: true, open: () => (one ??= read()) };
}

/**
 * Check the map before anything is sent and return its header: a file
 * through once (every disk's digest), a pipe by its header (its entries are
 * checked as the delta reads them).
 */
export async function checkBaseMap(src: BaseMapSource): Promise<BlockMapHeader> {
  const m = await src.open().catch((e: unknown) => {
    throw cannotRead(src.where, e);
  });
  if (src.once) return m.header;
  for (const d of m.header.disks) await m.check(d.index);
  await m.end();
  return m.header;
}

/**
 * Refuse a base that is not this machine's or does not have its disks, before
 * anything is sent. `capacities` are the overlays' sizes, in disk order.
 */
export function checkBaseFits(header: BlockMapHeader, name: string, capacities: number[], where: string): void {
  const redo = 'send a full export (without --base-map), or fetch the right map with p2v-import --block-map NAME';
  if (header.name !== name)
    throw new P2vError('USAGE', `wrong base: ${where} is the map of ${header.name}, and this export is ${name}`, {
      hint: `give the map of ${name} (p2v-import --block-map ${name}), or --name ${header.name} if that is this machine`,
    });
  if (header.disks.length !== capacities.length)
    throw new P2vError(
      'USAGE',
      `wrong base: the base of ${name} has ${header.disks.length} disk(s), this export ${capacities.length}`,
      {
        hint: redo,
      },
    );
  for (const [i, c] of capacities.entries())
    if (header.disks[i]!.capacity !== c)
      throw new P2vError('USAGE', `wrong base: disk ${i} is ${c} bytes, its base ${header.disks[i]!.capacity}`, {
        hint: `the disk layout changed: ${redo}`,
      });
}

export { verifyBlockMap };
