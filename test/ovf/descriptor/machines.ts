/** Machine descriptions the descriptor tests build, validate and read back. */
import { DEFAULT_CHUNK_SIZE, FORMAT_URI, type MachineDescription } from '../../../ovf/types.js';

const GiB = 2 ** 30;

export const oneDisk: MachineDescription = {
  name: 'web1',
  cpus: 1,
  memoryMiB: 512,
  files: [{ id: 'file1', href: 'web1-disk1.vmdk', size: 123456 }],
  disks: [
    {
      diskId: 'vmdisk1',
      fileRef: 'file1',
      capacity: 4 * GiB,
      format: 'vmdk-streamOptimized',
      formatUri: FORMAT_URI.streamOptimized,
      controller: 'scsi',
      unit: 0,
    },
  ],
  networks: [],
  nics: [],
};

export const twoDisksTwoNics: MachineDescription = {
  name: 'db2.example.org',
  annotation: 'Converted by ganeti-p2v from a physical machine',
  os: { id: 96, description: 'Debian GNU/Linux 12 (bookworm) 64-bit' },
  cpus: 4,
  memoryMiB: 8192,
  files: [
    { id: 'file1', href: 'db2-disk1.vmdk', size: 1_000_000_000 },
    { id: 'file2', href: 'db2-disk2.vmdk', size: 2_000_000_000 },
  ],
  disks: [
    {
      diskId: 'vmdisk1',
      fileRef: 'file1',
      capacity: 20 * GiB,
      populatedSize: 3 * GiB,
      format: 'vmdk-streamOptimized',
      formatUri: FORMAT_URI.streamOptimized,
      controller: 'virtio',
      unit: 0,
    },
    {
      diskId: 'vmdisk2',
      fileRef: 'file2',
      capacity: 500 * GiB + 512,
      populatedSize: 7 * GiB,
      format: 'vmdk-streamOptimized',
      formatUri: FORMAT_URI.streamOptimized,
      controller: 'virtio',
      unit: 1,
    },
  ],
  networks: ['lan', 'backup'],
  nics: [
    { network: 'lan', mac: 'aa:00:00:12:34:56', model: 'virtio' },
    { network: 'backup', mac: 'aa:00:00:65:43:21', model: 'E1000' },
  ],
  ganeti: {
    os: 'p2v-image+default',
    hypervisor: 'kvm',
    diskTemplate: 'plain',
    autoBalance: false,
    tags: ['p2v', 'from-db2'],
    nics: [
      { mode: 'bridged', link: 'br0', ip: 'none' },
      { mode: 'routed', link: 'rt1', ip: '192.0.2.7', network: 'backup-net' },
    ],
    hypervisorParams: { serial_console: 'true', kernel_path: '' },
    osParams: { root_device: '/dev/vda1' },
  },
};

export const chunked: MachineDescription = {
  name: 'big',
  cpus: 2,
  memoryMiB: 2048,
  files: [{ id: 'file1', href: 'big-disk1.vmdk', size: 3 * DEFAULT_CHUNK_SIZE + 17, chunkSize: DEFAULT_CHUNK_SIZE }],
  disks: [
    {
      diskId: 'vmdisk1',
      fileRef: 'file1',
      capacity: 100 * GiB,
      format: 'vmdk-streamOptimized',
      formatUri: FORMAT_URI.streamOptimized,
      controller: 'sata',
      unit: 0,
    },
  ],
  networks: ['VM Network'],
  nics: [{ network: 'VM Network', model: 'E1000' }],
};

/** Every character XML makes awkward, in every place a user-chosen string lands. */
export const oddNames: MachineDescription = {
  name: `R&D <"lab"> 'box' ü€`,
  annotation: 'line one\nline two & <three> ]]> "quoted"\ttab',
  os: { id: 101, description: 'Linux <64-bit> & friends' },
  cpus: 1,
  memoryMiB: 1024,
  files: [{ id: 'f&1', href: 'disks/R&D "disk" 1.vmdk' }],
  disks: [
    {
      diskId: 'd<1>',
      fileRef: 'f&1',
      capacity: 1024 * 1024,
      format: 'vmdk-streamOptimized',
      formatUri: FORMAT_URI.streamOptimized,
      controller: 'ide',
      unit: 0,
    },
    {
      diskId: 'blank',
      capacity: 10 * 1024 * 1024,
      format: 'raw',
      formatUri: FORMAT_URI.raw,
      controller: 'ide',
      unit: 1,
    },
  ],
  networks: ['net "A" & <B>'],
  nics: [{ network: 'net "A" & <B>', mac: 'aa:00:00:00:00:01' }],
  ganeti: {
    name: 'r-and-d-lab.example.org',
    os: 'p2v-image+default',
    hypervisor: 'xen-hvm',
    nics: [{ mode: 'bridged', link: 'xen-br0' }],
    hypervisorParams: { 'root-path': '/dev/xvda1', kernel_args: 'ro console=hvc0 & more' },
  },
};

export const MACHINES: Record<string, MachineDescription> = { oneDisk, twoDisksTwoNics, chunked, oddNames };
