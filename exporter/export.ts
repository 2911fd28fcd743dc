/**
 * The export supervisor: the only place that sequences the stages.
 *
 *   source disks → Overlay (nbdkit cow) → exposed file (nbdfuse) → Inspection
 *   → fixups (mounted guest) → sparsify (fstrim, swap) → unmount
 *   → NBD block status + reads → streamOptimized VMDK → OVA → stdout/file/ssh
 *
 * Every resource is registered with the exit-action registry as soon as it
 * exists, so an error, a signal or a closed pipe leaves nothing behind, and the
 * source disks are never opened for writing.
 */
import { rename, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { P2vError } from '../lib/errors.js';
import { onExit, type ExitHandle } from '../lib/exit-actions.js';
import type { Logger } from '../lib/log.js';
import { Progress } from '../lib/progress.js';
import { openOverlay, type Overlay } from './overlay.js';
import { exposeOverlay, mountGuest, type ExposedDisk } from './mount.js';
import { inspect } from './inspect.js';
import { sparsify, checkSourceNotMountedRw, type SparsifyReport } from './sparsify.js';
import { openDiskContent } from './disk-content.js';
import type { Inspection } from './types.js';
import { planFixups, applyFixups, renderDryRun, annotationFor } from '../fixups/index.js';
import type { FixupOptions, PlannedFixup } from '../fixups/types.js';
import { writeStreamOptimized } from '../ovf/vmdk/index.js';
import { buildDescriptor } from '../ovf/descriptor/index.js';
import { writeOva } from '../ovf/ova/index.js';
import { DEFAULT_CHUNK_SIZE, FORMAT_URI, type MachineDescription, type OvfDisk, type OvfFile } from '../ovf/types.js';
import { openRemoteReceiver, type RemoteReceiver, type SshOptions } from './ssh-transport.js';

export type ExportOutput =
  | { kind: 'stdout' }
  | { kind: 'file'; path: string }
  | { kind: 'ssh'; ssh: SshOptions }
  | { kind: 'stream'; stream: Writable };

export interface ExportOptions {
  disks: string[];
  output: ExportOutput;
  fixups: FixupOptions;
  /** Skip every fixup (a plain image copy, still sparsified). */
  noFixups?: boolean;
  /** Plan and print the fixups as diffs; send nothing. */
  dryRun?: boolean;
  /** Inspect, print, and stop. */
  inspectOnly?: 'text' | 'json';
  name?: string;
  cpus?: number;
  memoryMiB?: number;
  compressLevel?: number;
  chunkSize?: number;
  /** Ganeti OS name written to gnt:GanetiSection. */
  ganetiOs?: string;
  progress: 'tty' | 'json' | 'none';
  workDir?: string;
  log: Logger;
  /** Where --inspect / --dry-run text goes (stdout by default). */
  print?: (text: string) => void;
}

export interface StepTime {
  step: string;
  seconds: number;
}

export interface ExportReport {
  inspection: Inspection;
  fixups: PlannedFixup[];
  sparsify?: SparsifyReport;
  disks: { source: string; capacity: number; dataBytes: number; vmdkBytes: number }[];
  /** Bytes of the OVA stream we produced. */
  bytesSent: number;
  steps: StepTime[];
  output?: string;
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

/** A Ganeti-valid instance name from whatever the guest or user gave. */
export function instanceName(raw: string | undefined): string {
  const cleaned = (raw ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '');
  return cleaned || 'p2v-machine';
}

export async function runExport(opts: ExportOptions): Promise<ExportReport> {
  const { log } = opts;
  const print = opts.print ?? ((t: string) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'));
  const steps: StepTime[] = [];
  const timed = async <T>(step: string, body: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    log.info(`${step}…`);
    try {
      return await body();
    } finally {
      steps.push({ step, seconds: (Date.now() - t0) / 1000 });
    }
  };

  if (opts.disks.length === 0)
    throw new P2vError('USAGE', 'no source disk given', { hint: 'name each disk with --disk /dev/sdX' });
  // Reach the stager first: a wrong key or host key must fail before minutes of work, not after.
  let receiver: RemoteReceiver | undefined;
  if (opts.output.kind === 'ssh' && !opts.inspectOnly && !opts.dryRun) {
    receiver = await timed('connect', () => openRemoteReceiver((opts.output as { ssh: SshOptions }).ssh));
    const r = receiver;
    onExit('close SSH connection', () => r.close());
  }
  const workDir = await mkdtemp(join(opts.workDir ?? tmpdir(), 'p2v-export-'));
  const removeWork = onExit(`remove ${workDir}`, () => rm(workDir, { recursive: true, force: true }));

  // Released newest first in the finally below: FUSE views, then overlays, then the work dir.
  const overlays: Overlay[] = [];
  const exposed: ExposedDisk[] = [];
  try {
    await timed('overlay', async () => {
      for (const d of opts.disks) await checkSourceNotMountedRw(d);
      for (const d of opts.disks) {
        const ov = await openOverlay(d, { workDir });
        overlays.push(ov);
        exposed.push(await exposeOverlay(ov, workDir));
      }
    });

    const inspection = await timed('inspection', () =>
      inspect(
        opts.disks.map((source, i) => ({ source, exposed: exposed[i]!, size: 0 })),
        { workDir, log },
      ),
    );
    if (opts.inspectOnly) {
      const { formatInspection } = await import('./inspect-format.js');
      print(opts.inspectOnly === 'json' ? JSON.stringify(inspection, null, 2) : formatInspection(inspection));
      return { inspection, fixups: [], disks: [], bytesSent: 0, steps };
    }
    if (!inspection.os)
      log.warn('no operating system found on the source disks: exporting them as data disks, without fixups');

    let planned: PlannedFixup[] = [];
    let sparsifyReport: SparsifyReport | undefined;
    if (inspection.os) {
      const guest = await timed('mount', () => mountGuest(inspection, exposed, workDir, { readOnly: false }));
      try {
        const ctx = { root: guest.root, inspection, options: opts.fixups, log };
        if (!opts.noFixups) {
          planned = await timed('fixups: plan', () => planFixups(ctx));
          if (opts.dryRun) {
            print(renderDryRun(planned));
            return { inspection, fixups: planned, disks: [], bytesSent: 0, steps };
          }
          await timed('fixups: apply', () => applyFixups(ctx, planned));
        }
        sparsifyReport = await timed('sparsify', () => sparsify(inspection, guest, exposed, { log }));
      } finally {
        await guest.unmountAll();
      }
    } else if (opts.dryRun) {
      print('no operating system found: nothing to fix up\n');
      return { inspection, fixups: [], disks: [], bytesSent: 0, steps };
    }
    // The FUSE view must be gone before we read the overlay: unmounting flushes every write into nbdkit.
    for (const e of exposed) await e.close();

    return await timed('stream', () => streamOva(opts, inspection, planned, overlays, sparsifyReport, steps, receiver));
  } finally {
    for (const e of exposed.reverse()) await e.close();
    for (const o of overlays.reverse()) await o.close();
    await removeWork.run();
  }
}

async function streamOva(
  opts: ExportOptions,
  inspection: Inspection,
  planned: PlannedFixup[],
  overlays: Overlay[],
  sparsifyReport: SparsifyReport | undefined,
  steps: StepTime[],
  receiver: RemoteReceiver | undefined,
): Promise<ExportReport> {
  const { log } = opts;
  const contents = [];
  const connections: ExitHandle[] = [];
  try {
    for (const ov of overlays) {
      const c = await openDiskContent(ov.socket);
      connections.push(onExit(`close NBD connection to ${ov.source}`, () => c.close()));
      contents.push(c);
    }
    const totalData = contents.reduce((s, c) => s + c.dataBytes, 0);
    const progress = new Progress({ phase: 'streaming', total: totalData, mode: opts.progress });
    const name = instanceName(opts.name ?? opts.fixups.hostname ?? inspection.os?.hostname);
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
    const hrefs = contents.map((_, i) => `${name}-disk${i + 1}.vmdk`);
    const vmdks = contents.map((c) =>
      writeStreamOptimized(c, { level: opts.compressLevel, onProgress: (n: number) => progress.add(n) }),
    );
    const machine = (files: OvfFile[]): MachineDescription => ({
      name,
      annotation: annotationFor(planned),
      os: inspection.os ? { id: cimOsId(inspection.os.distro), description: inspection.os.prettyName } : undefined,
      cpus: opts.cpus ?? inspection.machine.cpus,
      memoryMiB: opts.memoryMiB ?? inspection.machine.memoryMiB,
      files,
      disks,
      networks: ['default'],
      nics: inspection.machine.nics.map((n) => ({ network: 'default', mac: n.mac, model: 'virtio' })),
      ganeti: {
        os: opts.ganetiOs ?? 'p2v-image+default',
        hypervisor: opts.fixups.hypervisor,
        name,
        nics: inspection.machine.nics.map(() => (opts.fixups.ip ? { ip: opts.fixups.ip.split('/')[0] } : {})),
      },
      producer: 'ganeti-p2v',
    });

    const out = opts.output;
    // `receiverDone` settles when the far end exits (ssh); `finish` runs once everything is written.
    let target: {
      mode: 'file' | 'stream';
      output: string | Writable;
      receiverDone?: Promise<void>;
      finish: () => Promise<void>;
      where: string;
    };
    if (out.kind === 'file') {
      const partial = `${out.path}.partial`;
      const cleanup = onExit(`remove ${partial}`, () => rm(partial, { force: true }));
      target = {
        mode: 'file',
        output: partial,
        where: out.path,
        finish: async () => {
          await rename(partial, out.path);
          cleanup.cancel();
        },
      };
    } else if (out.kind === 'ssh' && receiver) {
      const recv = receiver;
      target = {
        mode: 'stream',
        output: recv.stdin,
        where: `${out.ssh.target.user}@${out.ssh.target.host}`,
        receiverDone: recv.done,
        finish: async () => undefined,
      };
    } else {
      const stream = out.kind === 'stream' ? out.stream : process.stdout;
      target = {
        mode: 'stream',
        output: stream,
        where: out.kind === 'stream' ? 'stream' : 'stdout',
        finish: async () => undefined,
      };
    }

    const writing = writeOva({
      descriptorName: `${name}.ovf`,
      descriptor: (files) => buildDescriptor(machine(files), { chunked: target.mode === 'stream' }),
      files: vmdks.map((v, i) => ({ id: `file${i + 1}`, href: hrefs[i]!, content: v })),
      mode: target.mode,
      output: target.output as never,
      chunkSize: opts.chunkSize ?? DEFAULT_CHUNK_SIZE,
    }).then((r) => {
      if (target.mode === 'stream' && out.kind !== 'stdout') (target.output as Writable).end();
      return r;
    });
    // A receiver that gives up mid-stream stops reading: its exit status, not a write
    // blocked forever on a full channel, is what ends the export.
    const [result] = await Promise.all([writing, target.receiverDone]);
    await target.finish();
    progress.finish();
    log.info(
      `sent ${result.bytesWritten} bytes (${contents.length} disk(s), ${totalData} data bytes) to ${target.where}`,
    );
    return {
      inspection,
      fixups: planned,
      sparsify: sparsifyReport,
      disks: contents.map((c, i) => ({
        source: overlays[i]!.source,
        capacity: c.capacity,
        dataBytes: c.dataBytes,
        vmdkBytes: vmdks[i]!.stats.bytesOut,
      })),
      bytesSent: result.bytesWritten,
      steps,
      output: target.where,
    };
  } finally {
    // Before the overlays close: each connection talks to its nbdkit.
    for (const h of connections.reverse()) await h.run();
  }
}
