/**
 * The embedded VMDK text descriptor: build ours, and parse the few fields a
 * reader needs from anyone's (VMware, qemu, VirtualBox write slightly
 * different key sets and spacing).
 */
import { randomBytes } from 'node:crypto';

export type AdapterType = 'ide' | 'lsilogic' | 'buslogic' | 'legacyESX';

export interface DescriptorOptions {
  capacitySectors: bigint;
  /** File name in the extent line: the VMDK's name inside the OVA. */
  fileName: string;
  adapterType: AdapterType;
  hwVersion: string;
  /** 32-bit content id; random when absent. */
  cid?: number;
}

/**
 * BIOS geometry VMware expects for the adapter: IDE disks use 16 heads, SCSI
 * adapters 255 heads, both 63 sectors per track; cylinders saturate at the
 * largest value the adapter's tools accept.
 */
export function geometryFor(
  capacitySectors: bigint,
  adapterType: AdapterType,
): { cylinders: number; heads: number; sectors: number } {
  const heads = adapterType === 'ide' ? 16 : 255;
  const sectors = 63;
  const maxCyl = adapterType === 'ide' ? 16383 : 65535;
  const perCyl = BigInt(heads * sectors);
  const cyl = (capacitySectors + perCyl - 1n) / perCyl;
  return { cylinders: Number(cyl > BigInt(maxCyl) ? BigInt(maxCyl) : cyl < 1n ? 1n : cyl), heads, sectors };
}

export function buildDescriptor(o: DescriptorOptions): string {
  const cid = o.cid ?? randomBytes(4).readUInt32LE(0);
  // A double quote or newline in the name would break the extent line.
  const name = o.fileName.replace(/["\r\n\\]/g, '_');
  const g = geometryFor(o.capacitySectors, o.adapterType);
  return [
    '# Disk DescriptorFile',
    'version=1',
    `CID=${cid.toString(16).padStart(8, '0')}`,
    'parentCID=ffffffff',
    'createType="streamOptimized"',
    '',
    '# Extent description',
    `RW ${o.capacitySectors} SPARSE "${name}"`,
    '',
    '# The Disk Data Base',
    '#DDB',
    '',
    `ddb.virtualHWVersion = "${o.hwVersion}"`,
    `ddb.geometry.cylinders = "${g.cylinders}"`,
    `ddb.geometry.heads = "${g.heads}"`,
    `ddb.geometry.sectors = "${g.sectors}"`,
    `ddb.adapterType = "${o.adapterType}"`,
    '',
  ].join('\n');
}

export interface ParsedDescriptor {
  /** key → value for `key=value` and `key = "value"` lines (quotes removed). */
  fields: Map<string, string>;
  createType?: string;
  extents: { access: string; sectors: bigint; type: string; file?: string }[];
}

export function parseDescriptor(text: string): ParsedDescriptor {
  const fields = new Map<string, string>();
  const extents: ParsedDescriptor['extents'] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const ext = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)(?:\s+"([^"]*)")?/.exec(line);
    if (ext) {
      extents.push({
        access: ext[1]!,
        sectors: BigInt(ext[2]!),
        type: ext[3]!,
        ...(ext[4] !== undefined ? { file: ext[4] } : {}),
      });
      continue;
    }
    const kv = /^([\w.]+)\s*=\s*(.*)$/.exec(line);
    if (kv) fields.set(kv[1]!, kv[2]!.replace(/^"(.*)"$/, '$1'));
  }
  const createType = fields.get('createType');
  return { fields, extents, ...(createType !== undefined ? { createType } : {}) };
}
