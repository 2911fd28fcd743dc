/**
 * The stream stage of p2v-export: the overlays, read over NBD (data extents
 * only), encoded as streamOptimized VMDKs and written as one OVA into the
 * chosen output's sink — chunked members into a pipe, or one member per disk
 * into a file. The OVF names the machine, its CPUs, memory and NICs, the
 * fixups in its annotation, and the gnt:GanetiSection.
 */
import { onExit, type ExitHandle } from '../lib/exit-actions.js';
import type { Progress } from '../lib/progress.js';
import { annotationFor } from '../fixups/index.js';
import type { FixupOptions, PlannedFixup } from '../fixups/types.js';
import { writeStreamOptimized } from '../ovf/vmdk/index.js';
import { buildDescriptor } from '../ovf/descriptor/index.js';
import { writeOva } from '../ovf/ova/index.js';
import { WARM_PASS_TAG } from '../ovf/delta/index.js';
import { DEFAULT_CHUNK_SIZE, FORMAT_URI, type MachineDescription, type OvfDisk, type OvfFile } from '../ovf/types.js';
import { openDiskContent, type DiskContentOptions, type OverlayDiskContent } from './disk-content.js';
import { openLayoutContent, type FittedDisk } from './fit/index.js';
import type { Overlay } from './overlay.js';
import type { ExportOutput } from './outputs/types.js';
import type { Inspection } from '../guest/types.js';

export interface OvaStreamOptions {
  /** The instance name: descriptor, member names and gnt:GanetiSection. */
  name: string;
  inspection: Inspection;
  planned: PlannedFixup[];
  /** --target-size: the disks read through their new layout (by --disk index; undefined = as they are). */
  fitted?: (FittedDisk | undefined)[];
  /** What the fit did, for the descriptor's annotation. */
  fitLines?: string[];
  fixups: FixupOptions;
  cpus?: number;
  memoryMiB?: number;
  compressLevel?: number;
  chunkSize?: number;
  ganetiOs?: string;
  /** A warm pass (p2v-export --warm): tagged WARM_PASS_TAG so the stager keeps it as a base only. */
  warm?: boolean;
  /** How the instance boots (fixups/boot-mode.ts decideBoot); written to the descriptor when known. */
  firmware?: 'uefi' | 'bios';
  /** The stream phase's meter, made once the total (the data bytes to read) is known. */
  meter: (totalData: number) => Progress;
}

export interface StreamedDisk {
  source: string;
  capacity: number;
  dataBytes: number;
  vmdkBytes: number;
}

export interface OvaStreamResult {
  disks: StreamedDisk[];
  bytesWritten: number;
}

/** CIM operating system ids (DSP0243 / CIM_OperatingSystem) for the common 64-bit Linux distributions. */
function cimOsId(distro: string | undefined): number {
  switch (distro) {
    case 'debian':
      return 96;
    case 'ubuntu':
      return 94;
    case 'rhel':
    case 'centos':
    case 'rocky':
    case 'almalinux':
      return 80;
    case 'sles':
    case 'opensuse-leap':
      return 85;
    default:
      return 101;
  }
}

/** The machine the descriptor describes (also used by a delta export, exporter/delta). */
export function describeMachine(
  opts: Omit<OvaStreamOptions, 'meter'>,
  files: OvfFile[],
  disks: OvfDisk[],
): MachineDescription {
  const { inspection, name } = opts;
  return {
    name,
    annotation: [annotationFor(opts.planned), ...(opts.fitLines?.length ? ['fitted to size:', ...opts.fitLines] : [])]
      .filter(Boolean)
      .join('\n'),
    os: inspection.os ? { id: cimOsId(inspection.os.distro), description: inspection.os.prettyName } : undefined,
    cpus: opts.cpus ?? inspection.machine.cpus,
    memoryMiB: opts.memoryMiB ?? inspection.machine.memoryMiB,
    files,
    disks,
    networks: ['default'],
    nics: inspection.machine.nics.map((n) => ({ network: 'default', mac: n.mac, model: 'virtio' })),
    ...(opts.firmware ? { firmware: opts.firmware === 'uefi' ? ('efi' as const) : ('bios' as const) } : {}),
    ganeti: {
      os: opts.ganetiOs ?? 'p2v-image+default',
      hypervisor: opts.fixups.hypervisor,
      name,
      nics: inspection.machine.nics.map(() => (opts.fixups.ip ? { ip: opts.fixups.ip.split('/')[0] } : {})),
      ...(opts.warm ? { tags: [WARM_PASS_TAG] } : {}),
    },
    producer: 'ganeti-p2v',
  };
}

/**
 * Open an NBD connection per overlay, then write the OVA through
 * `output.send`. The connections stay open (registered with the exit-action
 * registry) until the caller runs the returned handles: after the output's
 * finalize, before the overlays close.
 */
/** One disk's content as streamed: the overlay as it is, or read through its fitted layout (--target-size). */
export function openStreamContent(
  ov: Overlay,
  fit: FittedDisk | undefined,
  o: DiskContentOptions,
): Promise<OverlayDiskContent> {
  return fit ? openLayoutContent(ov.socket, fit.layout, fit.patches, o) : openDiskContent(ov.socket, o);
}

export async function streamOva(
  overlays: Overlay[],
  output: ExportOutput,
  opts: OvaStreamOptions,
  connections: ExitHandle[],
): Promise<OvaStreamResult> {
  const { inspection, name } = opts;
  // The stream's total is the data the overlays' block status reports after the trim: exactly the bytes
  // read and encoded (holes and zero extents are never read). Each disk reports its own running total.
  let meter: Progress | undefined;
  const doneByDisk: number[] = overlays.map(() => 0);
  const contents: OverlayDiskContent[] = [];
  for (const [i, ov] of overlays.entries()) {
    const onProgress = (doneSoFar: number) => {
      doneByDisk[i] = doneSoFar;
      meter?.update(doneByDisk.reduce((a, b) => a + b, 0));
    };
    const c = await openStreamContent(ov, opts.fitted?.[i], { onProgress });
    connections.push(onExit(`close NBD connection to ${ov.source}`, () => c.close()));
    contents.push(c);
  }
  const totalData = contents.reduce((s, c) => s + c.dataBytes, 0);
  meter = opts.meter(totalData);
  meter.update(0);
  const disks: OvfDisk[] = contents.map((c, i) => ({
    diskId: `vmdisk${i + 1}`,
    fileRef: `file${i + 1}`,
    capacity: c.capacity,
    populatedSize: c.dataBytes,
    format: 'vmdk-streamOptimized',
    formatUri: FORMAT_URI.streamOptimized,
    controller: 'scsi',
    unit: i,
  }));
  const vmdks = contents.map((c) => writeStreamOptimized(c, { level: opts.compressLevel }));
  const machine = (files: OvfFile[]) => describeMachine(opts, files, disks);

  const result = await output.send((sink) =>
    writeOva({
      descriptorName: `${name}.ovf`,
      descriptor: (files) => buildDescriptor(machine(files), { chunked: sink.mode === 'stream' }),
      files: vmdks.map((v, i) => ({ id: `file${i + 1}`, href: `${name}-disk${i + 1}.vmdk`, content: v })),
      ...(sink.mode === 'file' ? { mode: 'file', output: sink.path } : { mode: 'stream', output: sink.stream }),
      chunkSize: opts.chunkSize ?? DEFAULT_CHUNK_SIZE,
    }),
  );
  meter.finish();
  return {
    disks: contents.map((c, i) => ({
      source: overlays[i]!.source,
      capacity: c.capacity,
      dataBytes: c.dataBytes,
      vmdkBytes: vmdks[i]!.stats.bytesOut,
    })),
    bytesWritten: result.bytesWritten,
  };
}
