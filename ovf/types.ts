/**
 * The data model every folder speaks through. The exporter fills a
 * MachineDescription and feeds each disk's bytes as DataChunks; ovf/ turns them
 * into an OVF descriptor, streamOptimized VMDKs and an OVA; the importer reads
 * them back into the same model. Only these plain types cross folders.
 */

/** One run of a disk's bytes. A source yields chunks in strictly ascending, non-overlapping offset order; gaps are zeros. */
export interface DataChunk {
  /** Byte offset on the virtual disk. */
  offset: number;
  data: Buffer;
}

/** A disk's content: its capacity plus its data chunks (holes omitted). */
export interface DiskContent {
  capacity: number;
  chunks: AsyncIterable<DataChunk>;
}

/** Disk image formats we know by OVF format URI or by sniffing. */
export type DiskFormat = 'vmdk-streamOptimized' | 'vmdk-monolithicSparse' | 'vmdk-other' | 'qcow2' | 'raw' | 'unknown';

export type DiskController = 'ide' | 'scsi' | 'sata' | 'virtio';

/** A virtual disk of the machine as the descriptor describes it. */
export interface OvfDisk {
  /** ovf:diskId, e.g. "vmdisk1". */
  diskId: string;
  /** ovf:fileRef → OvfFile.id; absent for an empty (new) disk. */
  fileRef?: string;
  /** Capacity in bytes (units already applied). Undefined when the descriptor omits it (VirtualBox); take it from the disk file. */
  capacity?: number;
  /** Estimated bytes actually used, when known. */
  populatedSize?: number;
  format: DiskFormat;
  /** The ovf:format URI as written in the descriptor. */
  formatUri?: string;
  controller: DiskController;
  /** Order on its controller (0 = first disk). */
  unit: number;
}

/** A file the descriptor references (ovf:References/File). */
export interface OvfFile {
  id: string;
  /** Relative name inside the OVA (never absolute, never containing ".."). */
  href: string;
  /** Whole size in bytes, when known. */
  size?: number;
  /** ovf:chunkSize: the file travels as href.000000000, href.000000001, … */
  chunkSize?: number;
  /** ovf:compression="gzip". */
  compression?: 'gzip';
}

export interface OvfNic {
  /** Network name (NetworkSection). */
  network: string;
  mac?: string;
  /** Adapter model as the descriptor names it: "E1000", "virtio", "PCNet32", … */
  model?: string;
}

/** What Ganeti needs that OVF has no place for (gnt:GanetiSection, namespace "http://ganeti"). */
export interface GanetiSection {
  /** Ganeti OS name with variant, e.g. "p2v-image+default". */
  os?: string;
  /** "kvm", "xen-pvm", "xen-hvm", … */
  hypervisor?: string;
  /** Instance name (gnt:Name). */
  name?: string;
  /** Per NIC, in the order of `nics`. */
  nics?: { mode?: string; link?: string; ip?: string; network?: string }[];
  /** Disk template hint, e.g. "plain" or "file". */
  diskTemplate?: string;
  autoBalance?: boolean;
  tags?: string[];
  /** Other hypervisor/OS parameters, key → value. */
  hypervisorParams?: Record<string, string>;
  osParams?: Record<string, string>;
}

/** A machine: everything the OVF descriptor says, in one typed model. */
export interface MachineDescription {
  /** VirtualSystem ovf:id / Name. */
  name: string;
  /** Free text shown to people (AnnotationSection). */
  annotation?: string;
  /** OperatingSystemSection: CIM OS id (e.g. 96 = Debian 64-bit, 101 = Linux 64-bit) and description. */
  os?: { id: number; description?: string };
  cpus: number;
  memoryMiB: number;
  files: OvfFile[];
  disks: OvfDisk[];
  networks: string[];
  nics: OvfNic[];
  ganeti?: GanetiSection;
  /**
   * The firmware the machine boots with, a fact about the guest (never a
   * hypervisor parameter): written as VMware's vmw:Config key "firmware",
   * read from that and from VirtualBox's vbox:Machine Hardware/Firmware.
   * Absent: not said (BIOS, for every hypervisor we know).
   */
  firmware?: 'efi' | 'bios';
  /** Which tool wrote the descriptor, when recognisable. */
  producer?: 'ganeti-p2v' | 'ganeti' | 'vmware' | 'virtualbox' | 'unknown';
  /** OVF version of the envelope read: "1.0", "1.1", "2.0". */
  ovfVersion?: string;
}

/** ovf:format URIs. */
export const FORMAT_URI = {
  streamOptimized: 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized',
  monolithicSparse: 'http://www.vmware.com/interfaces/specifications/vmdk.html#sparse',
  qcow2: 'http://www.gnome.org/~markmc/qcow-image-format.html',
  raw: 'http://en.wikipedia.org/wiki/Byte',
} as const;

/** VMDK grain: the unit of compression and allocation in a streamOptimized VMDK. */
export const GRAIN_SIZE = 64 * 1024;
export const SECTOR_SIZE = 512;
/** Default ovf:chunkSize for OVAs written to a pipe. */
export const DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024;
