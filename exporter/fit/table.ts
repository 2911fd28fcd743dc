/**
 * The fitted disk's partition table, as a few sectors the stream serves from
 * memory (TablePatch). sfdisk writes the new table onto a sparse scratch file
 * of the target's size, from a script built out of the old table (`sfdisk
 * --json`) with only the starts and sizes changed: disk identifier, types,
 * GPT partition GUIDs, names and attributes, the boot flag and the numbering
 * stay. The patches are then read back: exactly the table's sectors (MBR
 * sector 0 and the EBRs; GPT sectors 0–33 and the backup at the new end),
 * never the gap after them, where grub's core.img lives and which the
 * stream maps from the overlay as it is. The overlay file is only read.
 */
import { mkdtemp, open, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { P2vError } from '../../lib/errors.js';
import { run } from '../../lib/run.js';
import type { DiskLayout, TablePatch } from './types.js';

export interface TablePatchOptions {
  /** The overlay exposed as a file (nbdfuse): read, never written. */
  diskFile: string;
  layout: DiskLayout;
  /** Where the scratch image goes (sparse, removed before returning). */
  workDir: string;
}

const SECTOR = 512;
/** MBR sector 0 up to the disk signature: the boot code we carry over. */
const BOOT_CODE = 440;
/** MBR partition types of an extended (container) partition. */
const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);
/** More than any table we write could take: a guard against reading a wrong file. */
const MAX_PATCH_BYTES = 1024 * 1024;

/** One entry of `sfdisk --json`. */
export interface SfdiskPartition {
  node: string;
  start: number;
  size: number;
  type: string;
  uuid?: string;
  name?: string;
  attrs?: string;
  bootable?: boolean;
}

export interface SfdiskTable {
  label: 'dos' | 'gpt';
  id?: string;
  firstlba?: number;
  sectorsize?: number;
  partitions?: SfdiskPartition[];
}

const SFDISK_WRITE = ['--no-reread', '--no-tell-kernel', '--wipe', 'never', '--wipe-partitions', 'never', '-q'];

export async function readTable(file: string): Promise<SfdiskTable> {
  const { stdout } = await run('sfdisk', ['--json', file], { what: `reading the partition table of ${file}` });
  return (JSON.parse(String(stdout)) as { partitiontable: SfdiskTable }).partitiontable;
}

/** The partition number sfdisk gives a node: its trailing digits. */
export function numberOf(node: string): number {
  const m = /(\d+)$/.exec(node);
  if (!m) throw new Error(`sfdisk node without a partition number: ${node}`);
  return Number(m[1]);
}

/** A GPT name as an sfdisk script value: anything beyond plain characters as \xNN escapes (sfdisk reads them). */
function scriptString(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8'))
    out += /[A-Za-z0-9 ._+:/()-]/.test(String.fromCharCode(byte))
      ? String.fromCharCode(byte)
      : `\\x${byte.toString(16).padStart(2, '0')}`;
  return `"${out}"`;
}

/** The old table with each partition at its planned place. */
function newTable(old: SfdiskTable, layout: DiskLayout): SfdiskTable {
  const planned = new Map<number, { start: number; size: number }>();
  for (const p of layout.partitions) planned.set(p.number, { start: p.newStart, size: p.newSize });
  if (layout.extended)
    planned.set(layout.extended.number, { start: layout.extended.newStart, size: layout.extended.newSize });
  const parts = (old.partitions ?? []).map((p) => {
    const n = numberOf(p.node);
    const to = planned.get(n);
    if (!to)
      throw new P2vError('INSPECTION', `partition ${n} of the disk is not in the fit plan`, {
        hint: 'the disk changed since it was inspected: run p2v-export again',
      });
    planned.delete(n);
    return { ...p, node: `p${n}`, start: to.start / SECTOR, size: to.size / SECTOR };
  });
  if (planned.size > 0)
    throw new P2vError(
      'INSPECTION',
      `the fit plan names partition ${[...planned.keys()][0]}, which the disk does not have`,
      {
        hint: 'the disk changed since it was inspected: run p2v-export again',
      },
    );
  return { ...old, partitions: parts.sort((a, b) => numberOf(a.node) - numberOf(b.node)) };
}

function script(t: SfdiskTable): string {
  const lines = [`label: ${t.label}`];
  if (t.id) lines.push(`label-id: ${t.id}`);
  lines.push('unit: sectors');
  // The last usable LBA follows from the scratch file's size: the backup GPT goes at the new end.
  if (t.label === 'gpt' && t.firstlba) lines.push(`first-lba: ${t.firstlba}`);
  lines.push(`sector-size: ${SECTOR}`, '');
  for (const p of t.partitions ?? []) {
    const f = [`start=${p.start}`, `size=${p.size}`, `type=${p.type}`];
    if (p.uuid) f.push(`uuid=${p.uuid}`);
    if (p.name) f.push(`name=${scriptString(p.name)}`);
    // Attribute names, GUID:bit lists, commas and spaces: quoted as they are (sfdisk reads no escapes there).
    if (p.attrs) f.push(`attrs="${p.attrs.replace(/[^A-Za-z0-9 :,]/g, '')}"`);
    if (p.bootable) f.push('bootable');
    lines.push(`${p.node} : ${f.join(', ')}`);
  }
  return lines.join('\n') + '\n';
}

/** The fields sfdisk must have kept, for the check after writing. */
function comparable(t: SfdiskTable): string {
  const parts = (t.partitions ?? []).map((p) => ({
    n: numberOf(p.node),
    start: p.start,
    size: p.size,
    type: p.type.toLowerCase(),
    uuid: p.uuid?.toLowerCase(),
    name: p.name,
    attrs: p.attrs,
    bootable: !!p.bootable,
  }));
  return JSON.stringify({ label: t.label, id: t.id?.toLowerCase(), parts });
}

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, offset);
  if (bytesRead !== length) throw new Error(`short read of the scratch table at ${offset}`);
  return buf;
}

/** MBR: sector 0 and each EBR of the logical partitions' chain. */
async function dosPatches(fh: FileHandle, size: number): Promise<TablePatch[]> {
  const mbr = await readAt(fh, 0, SECTOR);
  const patches: TablePatch[] = [{ offset: 0, data: mbr }];
  let extStart = -1;
  for (let i = 0; i < 4; i++) {
    const e = 446 + 16 * i;
    if (EXTENDED_TYPES.has(mbr[e + 4]!)) extStart = mbr.readUInt32LE(e + 8);
  }
  if (extStart < 0) return patches;
  const seen = new Set<number>();
  for (let at = extStart; ;) {
    if (seen.has(at) || seen.size > 256 || (at + 1) * SECTOR > size)
      throw new Error('the scratch table has a broken EBR chain');
    seen.add(at);
    const ebr = await readAt(fh, at * SECTOR, SECTOR);
    patches.push({ offset: at * SECTOR, data: ebr });
    const next = 446 + 16;
    if (!EXTENDED_TYPES.has(ebr[next + 4]!)) break;
    at = extStart + ebr.readUInt32LE(next + 8);
  }
  return patches;
}

/** GPT: protective MBR, header and entries at the start; entries and header at the end. */
async function gptPatches(fh: FileHandle, size: number): Promise<TablePatch[]> {
  const header = await readAt(fh, SECTOR, SECTOR);
  if (header.toString('latin1', 0, 8) !== 'EFI PART') throw new Error('sfdisk wrote no GPT header');
  const entriesLba = Number(header.readBigUInt64LE(72));
  const entrySectors = Math.ceil((header.readUInt32LE(80) * header.readUInt32LE(84)) / SECTOR);
  const backupLba = Number(header.readBigUInt64LE(32));
  if ((backupLba + 1) * SECTOR !== size) throw new Error('the backup GPT header is not in the last sector');
  const backup = await readAt(fh, backupLba * SECTOR, SECTOR);
  const backupEntriesLba = Number(backup.readBigUInt64LE(72));
  const head = (entriesLba + entrySectors) * SECTOR;
  return [
    { offset: 0, data: await readAt(fh, 0, head) },
    {
      offset: backupEntriesLba * SECTOR,
      data: await readAt(fh, backupEntriesLba * SECTOR, size - backupEntriesLba * SECTOR),
    },
  ];
}

/** The new partition table's sectors, for a stream of `layout.newSize` bytes. */
export async function partitionTablePatches(o: TablePatchOptions): Promise<TablePatch[]> {
  const { diskFile, layout } = o;
  const old = await readTable(diskFile);
  if (old.label !== layout.table)
    throw new P2vError('INSPECTION', `${diskFile} has a ${old.label} table, the fit plan a ${layout.table} one`, {
      hint: 'the disk changed since it was inspected: run p2v-export again',
    });
  if ((old.sectorsize ?? SECTOR) !== SECTOR)
    throw new P2vError('POLICY', `--target-size handles 512-byte sectors only, and ${diskFile} has ${old.sectorsize}`, {
      hint: 'export the disk at its own size (without --target-size)',
    });
  const wanted = newTable(old, layout);

  const src = await open(diskFile, 'r');
  let bootSector: Buffer;
  try {
    bootSector = await readAt(src, 0, SECTOR);
  } finally {
    await src.close();
  }

  const dir = await mkdtemp(join(o.workDir, 'p2v-fit-table-'));
  const file = join(dir, 'table.img');
  try {
    const fh = await open(file, 'wx');
    try {
      await fh.truncate(layout.newSize);
      // The boot code in sector 0 survives sfdisk: it rewrites only the signature and the entries.
      await fh.write(bootSector, 0, SECTOR, 0);
    } finally {
      await fh.close();
    }
    await run('sfdisk', [...SFDISK_WRITE, file], { input: script(wanted), what: 'writing the fitted partition table' });
    const written = await readTable(file);
    if (comparable(written) !== comparable(wanted))
      throw new Error(`sfdisk wrote another table than asked: ${comparable(written)} instead of ${comparable(wanted)}`);

    const fh2 = await open(file, 'r');
    let patches: TablePatch[];
    try {
      patches = layout.table === 'gpt' ? await gptPatches(fh2, layout.newSize) : await dosPatches(fh2, layout.newSize);
    } finally {
      await fh2.close();
    }
    // Whatever sfdisk did, the boot code is the source's.
    bootSector.copy(patches[0]!.data, 0, 0, BOOT_CODE);
    // So is a protective MBR's boot flag (some BIOSes boot a GPT disk only when it is set).
    if (layout.table === 'gpt' && bootSector[446 + 4] === 0xee && patches[0]!.data[446 + 4] === 0xee)
      patches[0]!.data[446] = bootSector[446]!;
    patches.sort((a, b) => a.offset - b.offset);
    checkPatches(patches, layout);
    return patches;
  } finally {
    await unlink(file).catch(() => undefined);
    await rmdir(dir).catch(() => undefined);
  }
}

/** The patches are table sectors only: none may cover a partition's bytes on the target. */
function checkPatches(patches: TablePatch[], layout: DiskLayout): void {
  const total = patches.reduce((n, p) => n + p.data.length, 0);
  if (total > MAX_PATCH_BYTES) throw new Error(`the table patches take ${total} bytes, more than a table can`);
  for (const t of patches)
    for (const p of layout.partitions)
      if (t.offset < p.newStart + p.newSize && t.offset + t.data.length > p.newStart)
        throw new Error(`a table patch at ${t.offset} covers partition ${p.number}'s bytes`);
}
