/**
 * sniffDiskFormat: tell a disk image's format from its first bytes, so the
 * importer never trusts the OVF's ovf:format alone. A sparse VMDK is told
 * apart by its descriptor's createType when the head reaches it, else by its
 * header flags; formats we know but do not take (VHD, VDI, QED, archives)
 * come out 'unknown' rather than being mistaken for raw.
 */
import type { DiskFormat } from '../types.js';
import { SECTOR_SIZE } from '../types.js';
import { FLAG_COMPRESSED, FLAG_MARKERS, SPARSE_MAGIC } from './header.js';
import { parseDescriptor } from './descriptor.js';

const QCOW_MAGIC = 0x514649fb; // "QFI\xfb", big endian
const FOREIGN: { at: number; magic: Buffer }[] = [
  { at: 0, magic: Buffer.from('conectix') }, // VHD (dynamic) footer copy
  { at: 0, magic: Buffer.from('vhdxfile') },
  { at: 64, magic: Buffer.from([0x7f, 0x10, 0xda, 0xbe]) }, // VDI signature
  { at: 0, magic: Buffer.from('QED\0') },
  { at: 0, magic: Buffer.from('COWD') }, // VMware ESX sparse (vmfsSparse)
  { at: 0, magic: Buffer.from([0x1f, 0x8b]) }, // gzip
  { at: 0, magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) }, // xz
  { at: 0, magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]) }, // zstd
  { at: 257, magic: Buffer.from('ustar') }, // tar (an OVA inside an OVA)
];

export function sniffDiskFormat(head: Buffer): DiskFormat {
  if (head.length >= 4 && head.readUInt32LE(0) === SPARSE_MAGIC) return sniffSparseVmdk(head);
  if (head.length >= 4 && head.readUInt32BE(0) === QCOW_MAGIC) return 'qcow2';
  if (head.subarray(0, 21).toString('latin1') === '# Disk DescriptorFile') return 'vmdk-other';
  for (const f of FOREIGN)
    if (head.length >= f.at + f.magic.length && head.subarray(f.at, f.at + f.magic.length).equals(f.magic))
      return 'unknown';
  return head.length >= SECTOR_SIZE ? 'raw' : 'unknown';
}

function sniffSparseVmdk(head: Buffer): DiskFormat {
  if (head.length >= 44) {
    const descAt = Number(head.readBigUInt64LE(28)) * SECTOR_SIZE;
    const descLen = Number(head.readBigUInt64LE(36)) * SECTOR_SIZE;
    if (descAt > 0 && descLen > 0 && head.length > descAt) {
      const raw = head.subarray(descAt, Math.min(head.length, descAt + descLen));
      const nul = raw.indexOf(0);
      const type = parseDescriptor(raw.subarray(0, nul < 0 ? raw.length : nul).toString('latin1')).createType;
      if (type === 'streamOptimized') return 'vmdk-streamOptimized';
      if (type === 'monolithicSparse') return 'vmdk-monolithicSparse';
      if (type !== undefined) return 'vmdk-other';
    }
  }
  if (head.length < 12) return 'vmdk-other';
  const flags = head.readUInt32LE(8);
  return flags & FLAG_COMPRESSED && flags & FLAG_MARKERS ? 'vmdk-streamOptimized' : 'vmdk-monolithicSparse';
}
