/**
 * PartitionTable: the partition table of one exposed disk, read with
 * `sfdisk --json` (MBR "dos" with extended/logical partitions, and GPT), sizes
 * in bytes. sfdisk reads a plain file, so this works on the nbdfuse file of an
 * overlay without any kernel partition devices (there are none here: no nbd
 * module, and `losetup -P` creates no partition nodes).
 *
 *   readPartitionTable(file): Promise<PartitionTable>
 *   isContainerPartition(p): boolean   — MBR extended partitions hold no filesystem
 */
import { P2vError } from '../lib/errors.js';
import { run } from '../lib/run.js';
import type { PartitionTableType } from './types.js';

export interface TablePartition {
  /** 1-based number as in the table (logical partitions start at 5). */
  number: number;
  start: number;
  size: number;
  /** MBR type byte in lower-case hex ("83") or upper-case GPT type GUID. */
  type: string;
  /** GPT partition GUID, or the MBR PARTUUID "<disk-id>-<NN>" the kernel shows. */
  partUuid?: string;
  /** GPT partition name. */
  name?: string;
  bootable?: boolean;
}

export interface PartitionTable {
  type: PartitionTableType;
  /** MBR disk identifier ("0x1234abcd") or GPT disk GUID. */
  diskId?: string;
  sectorSize: number;
  partitions: TablePartition[];
}

interface SfdiskJson {
  partitiontable?: {
    label?: string;
    id?: string;
    device?: string;
    sectorsize?: number;
    partitions?: {
      node?: string;
      start?: number;
      size?: number;
      type?: string;
      uuid?: string;
      name?: string;
      bootable?: boolean;
    }[];
  };
}

/** MBR types that only hold other partitions (DOS extended, Win95 LBA extended, Linux extended). */
const EXTENDED = new Set(['5', '05', 'f', '0f', '85']);

export function isContainerPartition(p: Pick<TablePartition, 'type'>): boolean {
  return EXTENDED.has(p.type.toLowerCase());
}

/** Parse `sfdisk --json` output; exported for unit tests. */
export function parseSfdiskJson(text: string, device: string): PartitionTable {
  let json: SfdiskJson;
  try {
    json = JSON.parse(text) as SfdiskJson;
  } catch (e) {
    throw new P2vError('INSPECTION', `cannot parse the partition table of ${device}`, {
      cause: e,
      hint: 'check the disk with `sfdisk -l`',
    });
  }
  const t = json.partitiontable;
  if (!t || (t.label !== 'dos' && t.label !== 'gpt'))
    throw new P2vError('INSPECTION', `${device} has an unsupported partition table (${t?.label ?? 'none'})`, {
      hint: 'only MBR (dos) and GPT partition tables are supported',
    });
  const sector = t.sectorsize ?? 512;
  const dev = t.device ?? '';
  const mbrId = t.label === 'dos' && t.id ? t.id.replace(/^0x/i, '').toLowerCase().padStart(8, '0') : undefined;
  const partitions = (t.partitions ?? []).map((p, i): TablePartition => {
    // The node is the device name with the number appended ("disk.img1", "/dev/nvme0n1p1").
    const node = p.node ?? '';
    const m = (node.startsWith(dev) ? node.slice(dev.length) : node).match(/(\d+)$/);
    const number = m ? Number(m[1]) : i + 1;
    const type = t.label === 'dos' ? (p.type ?? '').toLowerCase() : (p.type ?? '').toUpperCase();
    return {
      number,
      start: (p.start ?? 0) * sector,
      size: (p.size ?? 0) * sector,
      type,
      partUuid:
        t.label === 'gpt'
          ? p.uuid?.toLowerCase()
          : mbrId
            ? `${mbrId}-${number.toString(16).padStart(2, '0')}`
            : undefined,
      name: p.name || undefined,
      bootable: t.label === 'dos' ? p.bootable === true : undefined,
    };
  });
  return {
    type: t.label,
    diskId: t.label === 'dos' ? (t.id ? t.id.toLowerCase() : undefined) : t.id?.toLowerCase(),
    sectorSize: sector,
    partitions,
  };
}

/** Read the partition table of a disk file; a disk without one gives type 'none'. */
export async function readPartitionTable(file: string): Promise<PartitionTable> {
  const r = await run('sfdisk', ['--json', file], { allowFailure: true });
  if (r.exitCode !== 0) {
    const err = String(r.stderr ?? '');
    // sfdisk says so and exits 1 for a disk that has no (recognized) table: a whole-disk fs or blank disk.
    if (/does not contain a recognized partition table/i.test(err))
      return { type: 'none', sectorSize: 512, partitions: [] };
    throw new P2vError('INSPECTION', `cannot read the partition table of ${file}`, {
      command: `sfdisk --json ${file}`,
      stderrTail: err.trim().split('\n').slice(-5).join('\n') || undefined,
      hint: 'check the disk with `sfdisk -l`; a damaged table must be repaired on the source first',
    });
  }
  return parseSfdiskJson(String(r.stdout), file);
}
