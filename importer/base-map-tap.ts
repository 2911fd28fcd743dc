/**
 * The block map of a disk as it is decoded (--keep-base): every chunk the
 * importer writes is digested on the way, so a complete import's base has
 * its map without reading the disk again (a 2 GiB disk read back took longer
 * than the delta it served). Only a finished disk's map is used: an import
 * that stops has its map made from the disk file itself (base.ts), since
 * writes still in flight at the stop may not have reached it.
 */
import { join } from 'node:path';
import { BlockDigester, DEFAULT_BLOCK_SIZE, type DigestedBlock } from '../ovf/delta/index.js';
import type { DataChunk } from '../ovf/types.js';
import { baseMapName, MapFileWriter } from './base.js';

export class MapTap {
  private digester?: BlockDigester;
  private writer?: MapFileWriter;
  private readonly out: DigestedBlock[] = [];

  constructor(
    private readonly dir: string,
    private readonly index: number,
  ) {}

  async start(capacity: number): Promise<void> {
    this.digester = new BlockDigester(capacity, DEFAULT_BLOCK_SIZE);
    this.writer = await MapFileWriter.create(join(this.dir, baseMapName(this.index)), DEFAULT_BLOCK_SIZE, capacity);
  }

  async write(chunk: DataChunk): Promise<void> {
    this.digester!.push(chunk, this.out);
    await this.drain();
  }

  private async drain(): Promise<void> {
    for (const b of this.out) {
      for (let k = 0; k < b.count; k++) {
        this.writer!.add(b.entry);
        if (this.writer!.full) await this.writer!.flush();
      }
    }
    this.out.length = 0;
  }

  /** The map's digest once the disk is complete, or undefined when this disk was not decoded through the tap. */
  async finish(): Promise<string | undefined> {
    if (!this.digester) return undefined;
    this.digester.finish(this.out);
    await this.drain();
    return this.writer!.close();
  }

  async abort(): Promise<void> {
    await this.writer?.abort();
  }
}
