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
 *
 * Each stage is a phase of the progress contract (lib/progress.ts): connect
 * (--ssh/--direct), overlay, inspect, mount, fixups, trim, stream, finish;
 * phases that do not apply to a run (no guest OS: no mount, fixups or trim)
 * are not reported.
 */
import { link, lstat, mkdtemp, open, rename, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { P2vError } from '../lib/errors.js';
import { onExit, type ExitHandle } from '../lib/exit-actions.js';
import type { Logger } from '../lib/log.js';
import { PhaseReporter, type Progress, type ProgressMode } from '../lib/progress.js';
import { openOverlay, type Overlay } from './overlay.js';
import { exposeOverlay, mountGuest, type ExposedDisk } from './mount.js';
import { inspect } from './inspect.js';
import { sparsify, type SparsifyReport } from './sparsify.js';
import { checkSourceDisk, checkSourceNotMountedRw } from './source-check.js';
import { openDiskContent, type OverlayDiskContent } from './disk-content.js';
import type { Inspection } from './types.js';
import type { DeviceMapping } from '../guest/device-names.js';
import { planFixups, applyFixups, renderDryRun, annotationFor } from '../fixups/index.js';
import type { FixupOptions, PlannedFixup } from '../fixups/types.js';
import { writeStreamOptimized } from '../ovf/vmdk/index.js';
import { buildDescriptor } from '../ovf/descriptor/index.js';
import { writeOva } from '../ovf/ova/index.js';
import { DEFAULT_CHUNK_SIZE, FORMAT_URI, type MachineDescription, type OvfDisk, type OvfFile } from '../ovf/types.js';
import { openRemoteReceiver, type RemoteReceiver, type SshOptions } from './ssh-transport.js';

export type ExportOutput =
  | { kind: 'stdout' }
  /** A single-file OVA: written as PATH.partial (created exclusively), put in place when complete. */
  | { kind: 'file'; path: string; /** Replace PATH (and a stale PATH.partial) if it exists. */ force?: boolean }
  | { kind: 'ssh'; ssh: SshOptions }
  | { kind: 'stream'; stream: Writable };

export interface ExportOptions {
  disks: string[];
  output: ExportOutput;
  fixups: FixupOptions;
  /** Skip every fixup (a plain image copy, still sparsified). */
  noFixups?: boolean;
  /** --map-device: which exported disk a guest disk name is, where the guest's own view does not say. */
  mapDevice?: DeviceMapping[];
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
  /** The human display on stderr ('tty'), or JSON lines on stderr ('json': library callers only; the CLI uses progressOut). */
  progress: ProgressMode;
  /** Where JSON progress lines go as well (the --progress-fd stream). */
  progressOut?: Writable;
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
  const phases = new PhaseReporter({
    mode: opts.progress,
    out: opts.progress === 'json' ? opts.progressOut : undefined,
    jsonOut: opts.progress === 'json' ? undefined : opts.progressOut,
  });
  const timed = async <T>(step: string, body: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    log.info(`${step}…`);
    try {
      return await phases.run(step, body);
    } finally {
      steps.push({ step, seconds: (Date.now() - t0) / 1000 });
    }
  };

  if (opts.disks.length === 0)
    throw new P2vError('USAGE', 'no source disk given', { hint: 'name each disk with --disk /dev/sdX' });
  // The cheap refusals first: a wrong source or an existing output file is said before anything starts.
  for (const d of opts.disks) await checkSourceDisk(d);
  for (const d of opts.disks) await checkSourceNotMountedRw(d);
  const sending = !opts.inspectOnly && !opts.dryRun;
  const outFile = sending && opts.output.kind === 'file' ? await createPartial(opts.output) : undefined;
  // Reach the stager next: a wrong key or host key must fail before minutes of work, not after.
  let receiver: RemoteReceiver | undefined;
  if (opts.output.kind === 'ssh' && sending) {
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
      const meter = phases.meter('overlay', opts.disks.length, { unit: 'items', itemName: 'disks' });
      meter.update(0);
      for (const d of opts.disks) {
        const ov = await openOverlay(d, { workDir });
        overlays.push(ov);
        exposed.push(await exposeOverlay(ov, workDir));
        meter.update(overlays.length);
      }
      meter.finish();
    });

    const inspection = await timed('inspect', () =>
      inspect(
        opts.disks.map((source, i) => ({ source, exposed: exposed[i]!, size: 0 })),
        { workDir, log, mapDevice: opts.mapDevice },
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
          const dry = await timed('fixups', async () => {
            planned = await planFixups(ctx);
            if (opts.dryRun) return true;
            // One fixup at a time, so the count moves; each is applied as the runner would (same order, same checks).
            const todo = planned.filter((p) => p.changes.length > 0);
            const meter = phases.meter('fixups', todo.length, { unit: 'items', itemName: 'fixups' });
            meter.update(0);
            for (const [i, p] of todo.entries()) {
              await applyFixups(ctx, [p]);
              meter.update(i + 1);
            }
            meter.finish();
            return false;
          });
          if (dry) {
            print(renderDryRun(planned));
            return { inspection, fixups: planned, disks: [], bytesSent: 0, steps };
          }
        }
        sparsifyReport = await timed('trim', async () => {
          let meter: Progress | undefined;
          const r = await sparsify(inspection, guest, exposed, {
            log,
            onProgress: (done, total) =>
              (meter ??= phases.meter('trim', total, { unit: 'items', itemName: 'filesystems' })).update(done),
          });
          meter?.finish();
          return r;
        });
      } finally {
        await guest.unmountAll();
      }
    } else if (opts.dryRun) {
      print('no operating system found: nothing to fix up\n');
      return { inspection, fixups: [], disks: [], bytesSent: 0, steps };
    }
    // The FUSE view must be gone before we read the overlay: unmounting flushes every write into nbdkit.
    for (const e of exposed) await e.close();

    return await streamOva(
      opts,
      inspection,
      planned,
      overlays,
      sparsifyReport,
      steps,
      receiver,
      timed,
      phases,
      outFile,
    );
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
  timed: <T>(step: string, body: () => Promise<T>) => Promise<T>,
  phases: PhaseReporter,
  outFile: PartialFile | undefined,
): Promise<ExportReport> {
  const { log } = opts;
  const contents: OverlayDiskContent[] = [];
  const connections: ExitHandle[] = [];
  try {
    const sent = await timed('stream', () => streamDisks());
    return await timed('finish', async () => {
      await sent.finish();
      // Before the overlays close: each connection talks to its nbdkit.
      for (const h of connections.reverse()) await h.run();
      return sent.report;
    });
  } finally {
    for (const h of connections.reverse()) await h.run();
  }

  async function streamDisks(): Promise<{ report: ExportReport; finish: () => Promise<void> }> {
    // The stream's total is the data the overlays' block status reports after the trim: exactly the bytes
    // read and encoded (holes and zero extents are never read). Each disk reports its own running total.
    let meter: Progress | undefined;
    const doneByDisk: number[] = overlays.map(() => 0);
    for (const [i, ov] of overlays.entries()) {
      const c = await openDiskContent(ov.socket, {
        onProgress: (doneSoFar) => {
          doneByDisk[i] = doneSoFar;
          meter?.update(doneByDisk.reduce((a, b) => a + b, 0));
        },
      });
      connections.push(onExit(`close NBD connection to ${ov.source}`, () => c.close()));
      contents.push(c);
    }
    const totalData = contents.reduce((s, c) => s + c.dataBytes, 0);
    meter = phases.meter('stream', totalData);
    meter.update(0);
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
    const vmdks = contents.map((c) => writeStreamOptimized(c, { level: opts.compressLevel }));
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
      if (!outFile) throw new Error('file output without its partial file');
      const partial = outFile;
      target = {
        mode: 'file',
        output: partial.path,
        where: out.path,
        finish: () => partial.putInPlace(),
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
    const receiverDone = target.receiverDone ?? Promise.resolve();
    const result = await Promise.race([writing, receiverDone.then(() => writing)]);
    meter.finish();
    log.info(
      `sent ${result.bytesWritten} bytes (${contents.length} disk(s), ${totalData} data bytes) to ${target.where}`,
    );
    const finish = async () => {
      await receiverDone;
      await target.finish();
    };
    const report: ExportReport = {
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
    return { report, finish };
  }
}

/** FILE.partial, created exclusively before any work; `putInPlace` names it FILE once complete. */
interface PartialFile {
  path: string;
  putInPlace(): Promise<void>;
}

function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Create `<path>.partial` exclusively (O_CREAT|O_EXCL: never through a symlink,
 * never over another file), refusing an existing PATH unless `force`. Without
 * force, PATH is put in place with link(2), which also refuses a PATH that
 * appeared while the export ran; with force, rename(2) replaces it.
 */
async function createPartial(out: { path: string; force?: boolean }): Promise<PartialFile> {
  const { path } = out;
  const partial = `${path}.partial`;
  const existing = await lstat(path).catch(() => undefined);
  if (existing?.isDirectory())
    throw new P2vError('USAGE', `-o ${path} is a directory`, {
      hint: 'name the OVA file to write, e.g. -o machine.ova',
    });
  if (existing && !out.force)
    throw new P2vError('USAGE', `${path} already exists: not overwritten`, {
      hint: 'choose another name, or add --force to replace it',
    });
  const create = () => open(partial, 'wx', 0o644);
  let fh;
  try {
    fh = await create();
  } catch (e) {
    if (errnoOf(e) === 'EEXIST' && out.force) {
      await unlink(partial); // the link itself if it is one: never what it points to
      fh = await create().catch((e2: unknown) => {
        throw outputError(partial, e2);
      });
    } else if (errnoOf(e) === 'EEXIST') {
      throw new P2vError('USAGE', `${partial} already exists (left by an interrupted export?)`, {
        hint: 'remove it, or add --force to replace it',
      });
    } else throw outputError(partial, e);
  }
  await fh.close();
  const cleanup = onExit(`remove ${partial}`, () => rm(partial, { force: true }));
  return {
    path: partial,
    async putInPlace() {
      if (out.force) {
        await rename(partial, path);
      } else {
        try {
          await link(partial, path);
        } catch (e) {
          if (errnoOf(e) !== 'EEXIST') throw outputError(path, e);
          cleanup.cancel();
          throw new P2vError('IO', `${path} appeared while the export ran: not overwritten`, {
            hint: `the complete OVA is ${partial}; rename it yourself, or export again with --force`,
          });
        }
        await unlink(partial);
      }
      cleanup.cancel();
    },
  };
}

function outputError(path: string, e: unknown): P2vError {
  const code = errnoOf(e);
  const why =
    code === 'ENOENT'
      ? 'its directory does not exist'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EROFS'
          ? 'the filesystem is read-only'
          : code === 'ENOTDIR'
            ? 'a part of its directory path is not a directory'
            : code === 'ENOSPC'
              ? 'no space left'
              : ((e as Error).message ?? String(e));
  return new P2vError('IO', `cannot create ${path}: ${why}`, {
    hint: 'choose a writable place for -o',
    cause: e,
  });
}
