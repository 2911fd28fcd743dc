/**
 * Bases (docs/design-delta.md): per machine, the staged disks of its last
 * import (complete or interrupted) kept under `<staging>/bases/<name>/`, with
 * a per-block digest map, so the next export of that machine sends only the
 * blocks that differ (a delta) or are still missing (a resume).
 *
 *   bases/<name>/diskN.raw   the disk, sparse; never written after it is kept
 *   bases/<name>/diskN.map   its block entries (ovf/delta block map), made on first use
 *   bases/<name>/base.json   name, state, block size, and per disk its capacity,
 *                            identity (size, mtime, inode) and map digest
 *
 * A base is built in a private work directory (place.ts: mkdtemp 0700, files
 * created exclusively) and renamed into place, so `<name>/` is always whole;
 * the previous base of that name goes only once the new one is in place. A
 * delta is applied to a copy of the base (importer/delta-apply.ts), never to
 * the base, so a failed delta leaves it as it was. A base whose disk file
 * changed since it was kept (someone wrote to it) is refused.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { P2vError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { run } from '../lib/run.js';
import { checkInstanceName } from '../lib/instance-name.js';
import { printable } from '../lib/text.js';
import {
  ByteReader,
  DEFAULT_BLOCK_SIZE,
  DiskDigest,
  digestBlocks,
  DIGEST_BYTES,
  ENTRY_DATA,
  ENTRY_ZERO,
  isZero,
  parseEntries,
  writeBlockMap,
  type BlockEntry,
  type BlockMapHeader,
  type DigestedBlock,
} from '../ovf/delta/index.js';
import type { DataChunk } from '../ovf/types.js';
import { CREATE_NEW } from './disk-sink.js';
import { openOutputPlace, openWorkDir, placeDir, writeNewFile } from './place.js';
import { readOurs } from './housekeeping.js';

export const BASES_DIR = 'bases';
export const BASE_FILE = 'base.json';
/** In a base's dir while an import applies a delta to its disks in place (base-take.ts): that import's id. */
export const TAKEN_MARK = 'taken-by';
const MAX_BASE_JSON = 256 * 1024;

export interface BaseDisk {
  index: number;
  capacity: number;
  /** Identity of diskN.raw when kept: a change means someone wrote to it. */
  size: number;
  mtimeMs: number;
  ino: number;
  /** The map's disk digest, once diskN.map is made. */
  digest?: string;
}

export interface BaseInfo {
  name: string;
  state: 'complete' | 'interrupted';
  /** ISO time the base was kept. */
  created: string;
  blockSize: number;
  disks: BaseDisk[];
}

export interface Base extends BaseInfo {
  dir: string;
}

export function basesRoot(staging: string): string {
  return join(resolve(staging), BASES_DIR);
}

export function baseDiskName(index: number): string {
  return `disk${index}.raw`;
}

export function baseMapName(index: number): string {
  return `disk${index}.map`;
}

function noBase(name: string, staging: string): P2vError {
  return new P2vError('USAGE', `no base for ${name} in ${basesRoot(staging)}`, {
    hint: 'send a full export first (a stager started with --keep-base keeps it), or see p2v-import --list',
  });
}

/** The import that has taken the base in `dir` (its `taken-by` mark, base-take.ts), if one has. */
export async function takenBy(dir: string): Promise<string | undefined> {
  return (await readOurs(join(dir, TAKEN_MARK), 256))?.trim();
}

/** The base of `name`, checked: its files are those kept (not written to since). */
export async function openBase(staging: string, name: string): Promise<Base> {
  checkInstanceName(name);
  const dir = join(basesRoot(staging), name);
  const st = await lstat(dir).catch(() => undefined);
  if (!st) throw noBase(name, staging);
  if (!st.isDirectory()) throw new P2vError('IO', `${dir} is not a base directory`, { hint: 'remove it by hand' });
  const taker = await takenBy(dir);
  if (taker !== undefined)
    throw new P2vError('USAGE', `the base of ${name} is in use: import ${printable(taker)} is applying a delta to it`, {
      hint: `wait for that import to end; if none is running, drop the base with p2v-import --remove ${name} and send a full export`,
    });
  const text = await readOurs(join(dir, BASE_FILE), MAX_BASE_JSON);
  let info: BaseInfo;
  try {
    info = JSON.parse(text ?? 'null') as BaseInfo;
    if (!info || info.name !== name || !Array.isArray(info.disks)) throw new Error('malformed');
  } catch {
    throw new P2vError('IO', `the base of ${name} has no readable ${BASE_FILE}`, {
      hint: `drop it with p2v-import --remove ${name} and send a full export`,
    });
  }
  const base = { ...info, dir };
  for (const d of info.disks) await checkBaseDisk(base, d.index);
  return base;
}

/**
 * Refuse a base disk whose file is not the one kept (size, mtime, inode):
 * written to since, through the base or through an output sharing its inode.
 */
export async function checkBaseDisk(base: Base, index: number): Promise<void> {
  const d = base.disks[index]!;
  const path = join(base.dir, baseDiskName(d.index));
  const s = await lstat(path).catch(() => undefined);
  if (!s?.isFile() || s.size !== d.size || s.mtimeMs !== d.mtimeMs || s.ino !== d.ino)
    throw new P2vError('IO', `the base of ${base.name}: disk ${d.index} changed since it was kept`, {
      hint: `something wrote to ${path} (or to an output that is a hard link to it); drop the base with p2v-import --remove ${base.name} and send a full export`,
    });
}

/**
 * Record the identity a base disk's file has now (after an undone delta put
 * it back: same bytes, new mtime) in `dir`'s base.json, replaced atomically.
 */
export async function rerecordBaseDisks(dir: string, name: string, indices: number[]): Promise<void> {
  const text = await readOurs(join(dir, BASE_FILE), MAX_BASE_JSON);
  const info = JSON.parse(text ?? 'null') as BaseInfo | null;
  if (!info || info.name !== name || !Array.isArray(info.disks))
    throw new Error(`${join(dir, BASE_FILE)} is not readable`);
  for (const index of indices) {
    const d = info.disks.find((x) => x.index === index);
    if (!d) throw new Error(`the base of ${name} has no disk ${index}`);
    const st = await lstat(join(dir, baseDiskName(index)));
    d.size = st.size;
    d.mtimeMs = st.mtimeMs;
    d.ino = st.ino;
  }
  const next = join(dir, `${BASE_FILE}.new`);
  await rm(next, { force: true });
  await writeBaseJson(next, info);
  await rename(next, join(dir, BASE_FILE));
}

/** The staged disks to keep as a base. */
export interface BaseSource {
  index: number;
  capacity: number;
  path: string;
  /** Its map, already made (a delta import writes it while applying): file and digest. */
  map?: { path: string; digest: string };
}

/**
 * Keep `disks` as the base of `name`, replacing the previous one. With
 * `move` (the staged copy goes away next) each disk file is renamed in, even
 * when an output is a hard link to it: a second copy of every disk cost more
 * than the whole delta (bench/README.md), and a write through that output
 * changes the file's mtime, which openBase and checkBaseDisk refuse. Without
 * `move` (the staged copy stays) it is copied (reflink where the filesystem
 * has it, sparse otherwise).
 */
export async function keepBase(
  staging: string,
  name: string,
  state: BaseInfo['state'],
  disks: BaseSource[],
  opts: { move: boolean; logger: Logger },
): Promise<string> {
  checkInstanceName(name);
  const root = basesRoot(staging);
  await mkdir(root, { recursive: true, mode: 0o700 });
  const place = await openOutputPlace(root);
  try {
    const work = await openWorkDir(place);
    try {
      await mkdir(work.at('base'), { mode: 0o700 });
      const info: BaseInfo = {
        name,
        state,
        created: new Date().toISOString(),
        blockSize: DEFAULT_BLOCK_SIZE,
        disks: [],
      };
      for (const d of disks) {
        const into = work.at(join('base', baseDiskName(d.index)));
        if (opts.move) await rename(d.path, into);
        else await copySparse(d.path, join(work.path, 'base', baseDiskName(d.index)));
        const kept = await stat(into);
        const disk: BaseDisk = {
          index: d.index,
          capacity: d.capacity,
          size: kept.size,
          mtimeMs: kept.mtimeMs,
          ino: kept.ino,
        };
        if (d.map) {
          await rename(d.map.path, work.at(join('base', baseMapName(d.index))));
          disk.digest = d.map.digest;
        }
        info.disks.push(disk);
      }
      await writeBaseJson(work.at(join('base', BASE_FILE)), info);
      // The previous base goes aside first, then the new one takes the name, then the old is removed.
      const old = `.old-${process.pid}-${Date.now()}`;
      const hadOld = await rename(place.at(name), place.at(old)).then(
        () => true,
        (e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT') return false;
          throw e;
        },
      );
      const final = await placeDir(work, 'base', place, name);
      if (hadOld) await rm(place.at(old), { recursive: true, force: true });
      opts.logger.info(`kept ${state} base of ${name} in ${final}`);
      return final;
    } finally {
      await work.remove();
    }
  } finally {
    await place.close();
  }
}

async function writeBaseJson(path: string, info: BaseInfo): Promise<void> {
  await writeNewFile(path, { path, place: path }, JSON.stringify(info, null, 2) + '\n', 0o600);
}

/** A sparse copy, sharing blocks (reflink) where the filesystem can. */
export async function copySparse(src: string, dst: string): Promise<void> {
  await run('cp', ['--reflink=auto', '--sparse=always', '--no-dereference', '--', src, dst], {
    what: `copying ${src}`,
  });
}

/** Read size when digesting a raw disk: several blocks at once. */
const READ_BYTES = 1024 * 1024;

/** A raw file's data chunks (zero stretches left out), read sequentially. */
async function* rawChunks(path: string, capacity: number): AsyncGenerator<DataChunk> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    for (let off = 0; off < capacity; off += READ_BYTES) {
      const n = Math.min(READ_BYTES, capacity - off);
      const buf = Buffer.alloc(n);
      const { bytesRead } = await fh.read(buf, 0, n, off);
      // A stretch of zeros (a hole, mostly) is left out: the digester counts it as ZERO blocks without copying it.
      if (bytesRead > 0 && !isZero(buf.subarray(0, bytesRead))) yield { offset: off, data: buf.subarray(0, bytesRead) };
    }
  } finally {
    await fh.close();
  }
}

/** A raw disk's blocks, in order, in batches (digestBlocks). */
export function blocksOfRaw(path: string, capacity: number, blockSize: number): AsyncIterable<DigestedBlock[]> {
  return digestBlocks(rawChunks(path, capacity), capacity, blockSize);
}

/** Entries of a map file (ours: written by MapFileWriter), in batches. */
export async function* entriesOfMapFile(path: string): AsyncGenerator<BlockEntry[]> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const r = new ByteReader(fh.createReadStream({ highWaterMark: 256 * 1024, autoClose: false }), path);
    for (;;) {
      const buf = await r.peek(1 + DIGEST_BYTES);
      if (buf.length === 0) return;
      const [batch, used] = parseEntries(buf, Number.MAX_SAFE_INTEGER, () => damagedMap(path));
      if (used === 0) throw damagedMap(path);
      r.consume(used);
      yield batch;
    }
  } finally {
    await fh.close();
  }
}

function damagedMap(path: string): P2vError {
  return new P2vError('IO', `${path} is damaged`, {
    hint: 'drop the base (p2v-import --remove NAME) and send a full export',
  });
}

/** Buffered writes of entries into a new map file; returns the disk digest at close. */
export class MapFileWriter {
  private buf = Buffer.alloc(256 * 1024);
  private used = 0;
  private readonly digest: DiskDigest;
  private constructor(
    private readonly fh: Awaited<ReturnType<typeof open>>,
    blockSize: number,
    capacity: number,
  ) {
    this.digest = new DiskDigest(blockSize, capacity);
  }
  static async create(path: string, blockSize: number, capacity: number): Promise<MapFileWriter> {
    return new MapFileWriter(await open(path, CREATE_NEW, 0o600), blockSize, capacity);
  }
  /** Entries already encoded (copied: `b` may be reused after the call). */
  async addBytes(b: Buffer): Promise<void> {
    if (this.used + b.length > this.buf.length) await this.flush();
    if (b.length > this.buf.length) {
      this.digest.addBytes(b);
      await this.fh.write(b);
      return;
    }
    b.copy(this.buf, this.used);
    this.used += b.length;
  }
  /** One entry into the buffer (flush before it fills: `flush` when `full`). */
  add(e: BlockEntry): void {
    if (this.used + 1 + DIGEST_BYTES > this.buf.length) {
      // Only when the caller did not flush in time: grow rather than lose an entry.
      const b = Buffer.alloc(this.buf.length * 2);
      this.buf.copy(b, 0, 0, this.used);
      this.buf = b;
    }
    if (e === null) this.buf[this.used++] = ENTRY_ZERO;
    else {
      this.buf[this.used++] = ENTRY_DATA;
      e.copy(this.buf, this.used);
      this.used += DIGEST_BYTES;
    }
  }
  addBlocks(blocks: DigestedBlock[]): void {
    for (const b of blocks) for (let k = 0; k < b.count; k++) this.add(b.entry);
  }
  get full(): boolean {
    return this.used > this.buf.length - 64 * 1024;
  }
  async flush(): Promise<void> {
    if (this.used === 0) return;
    const out = this.buf.subarray(0, this.used);
    this.digest.addBytes(out);
    await this.fh.write(out);
    this.used = 0;
  }
  async flushIfFull(): Promise<void> {
    if (this.full) await this.flush();
  }
  async close(): Promise<string> {
    await this.flush();
    await this.fh.sync();
    await this.fh.close();
    return this.digest.hex();
  }
  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}

/** Make each disk's map where it is missing (reading the disk once) and record its digest. */
export async function ensureBaseMaps(base: Base): Promise<Base> {
  if (base.disks.every((d) => d.digest !== undefined)) return base;
  const disks: BaseDisk[] = [];
  for (const d of base.disks) {
    if (d.digest !== undefined) {
      disks.push(d);
      continue;
    }
    const tmp = join(base.dir, `.${baseMapName(d.index)}.${process.pid}`);
    await rm(tmp, { force: true });
    const w = await MapFileWriter.create(tmp, base.blockSize, d.capacity);
    try {
      for await (const batch of blocksOfRaw(join(base.dir, baseDiskName(d.index)), d.capacity, base.blockSize)) {
        for (const b of batch) {
          for (let k = 0; k < b.count; k++) {
            w.add(b.entry);
            if (w.full) await w.flush();
          }
        }
      }
    } catch (e) {
      await w.abort();
      await rm(tmp, { force: true });
      throw e;
    }
    const digest = await w.close();
    await rename(tmp, join(base.dir, baseMapName(d.index)));
    disks.push({ ...d, digest });
  }
  const info: BaseInfo = {
    name: base.name,
    state: base.state,
    created: base.created,
    blockSize: base.blockSize,
    disks,
  };
  const tmp = join(base.dir, `.${BASE_FILE}.${process.pid}`);
  await rm(tmp, { force: true });
  await writeBaseJson(tmp, info);
  await rename(tmp, join(base.dir, BASE_FILE));
  return { ...info, dir: base.dir };
}

/** The block map of `name`'s base as bytes (p2v-import --block-map NAME). */
export async function blockMapOf(staging: string, name: string): Promise<AsyncIterable<Buffer>> {
  const base = await ensureBaseMaps(await openBase(staging, name));
  const header: BlockMapHeader = {
    name: base.name,
    state: base.state,
    blockSize: base.blockSize,
    disks: base.disks.map((d) => ({ index: d.index, capacity: d.capacity, digest: d.digest! })),
  };
  // The map files hold exactly the entries' bytes: they are streamed as they are.
  return writeBlockMap(header, (i) => mapFileBytes(join(base.dir, baseMapName(i))));
}

/** A map file's bytes (its entries, encoded), streamed. */
export async function* mapFileBytes(path: string): AsyncGenerator<Buffer> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    for await (const b of fh.createReadStream({ highWaterMark: 256 * 1024, autoClose: false })) yield b as Buffer;
  } finally {
    await fh.close();
  }
}

export interface BaseEntry {
  name: string;
  /** `in-use`: an import has taken its disks to apply a delta in place (base-take.ts). */
  state: BaseInfo['state'] | 'in-use' | 'unreadable';
  disks?: number;
  ageSeconds?: number;
  dir: string;
}

/** Every base, by name. */
export async function listBases(staging: string): Promise<BaseEntry[]> {
  const root = basesRoot(staging);
  const names = (await readdir(root).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
  const out: BaseEntry[] = [];
  for (const name of names) {
    const dir = join(root, name);
    try {
      const b = await openBase(staging, name);
      out.push({
        name,
        state: b.state,
        disks: b.disks.length,
        ageSeconds: Math.max(0, Math.round((Date.now() - Date.parse(b.created)) / 1000)),
        dir,
      });
    } catch {
      const taken = (await takenBy(dir)) !== undefined;
      out.push({ name, state: taken ? 'in-use' : 'unreadable', dir });
    }
  }
  return out;
}

/** Is there a base named `name` (a valid instance name with a directory under bases/)? */
export async function hasBase(staging: string, name: string): Promise<boolean> {
  try {
    checkInstanceName(name);
  } catch {
    return false;
  }
  return (await lstat(join(basesRoot(staging), name)).catch(() => undefined)) !== undefined;
}

/** `--remove NAME` for a base. */
export async function removeBase(staging: string, name: string): Promise<string> {
  checkInstanceName(name);
  const dir = join(basesRoot(staging), name);
  const st = await lstat(dir).catch(() => undefined);
  if (!st) throw noBase(name, staging);
  if (!st.isDirectory())
    throw new P2vError('USAGE', `${dir} is not a base directory; not removed`, { hint: 'remove it by hand' });
  await rm(dir, { recursive: true, force: true });
  return dir;
}
