/**
 * --base-map FILE: the stager's block map of this machine's base (p2v-import
 * --block-map NAME), checked whole before anything is sent, then read again
 * as a stream while the overlay is digested (never held in memory).
 */
import { createReadStream } from 'node:fs';
import { P2vError } from '../../lib/errors.js';
import { readBlockMap, verifyBlockMap, type BlockMapHeader, type BlockMapReader } from '../../ovf/delta/index.js';

export interface BaseMapSource {
  /** For messages: the file, or "the stager's map". */
  readonly where: string;
  /** A fresh read of the map, from its start. */
  open(): Promise<BlockMapReader>;
}

export function baseMapFile(path: string): BaseMapSource {
  return {
    where: path,
    open: () => readBlockMap(createReadStream(path, { highWaterMark: 256 * 1024 }), `base map ${path}`),
  };
}

/** Check the map through once (every disk's digest) and return its header. */
export async function checkBaseMap(src: BaseMapSource): Promise<BlockMapHeader> {
  const m = await src.open().catch((e: unknown) => {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'EACCES')
      throw new P2vError('USAGE', `cannot read --base-map ${src.where}: ${(e as Error).message}`, {
        hint: 'give the file written by p2v-import --block-map NAME',
      });
    throw e;
  });
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
