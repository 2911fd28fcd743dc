/**
 * The export supervisor: the only place that sequences the stages.
 *
 *   output.setup → source disks → Overlay (nbdkit cow) → exposed file (nbdfuse)
 *   → Inspection → fixups (mounted guest) → sparsify (fstrim, swap) → unmount
 *   → fit (--target-size: resize in the overlay, new partition table)
 *   → NBD block status + reads → streamOptimized VMDK → OVA into the output
 *   → output.finalize
 *
 * The output (outputs/: stdout, file, ssh, direct) is set up before any work,
 * so a refused file or host key fails first, and finalized only once the
 * whole OVA is written. Every resource is registered with the exit-action
 * registry as soon as it exists, so an error, a signal or a closed pipe leaves
 * nothing behind, and the source disks are never opened for writing.
 *
 * Each stage is a phase of the progress contract (lib/progress.ts): connect
 * (--ssh/--direct), overlay, inspect, mount, fixups, trim, stream, finish;
 * phases that do not apply to a run (no guest OS: no mount, fixups or trim)
 * are not reported.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { P2vError } from '../lib/errors.js';
import { formatBytes } from '../lib/units.js';
import { onExit, type ExitHandle } from '../lib/exit-actions.js';
import { sanitiseInstanceName } from '../lib/instance-name.js';
import type { Logger } from '../lib/log.js';
import { PhaseReporter, type Progress, type ProgressMode } from '../lib/progress.js';
import { openOverlay, type Overlay } from './overlay.js';
import { exposeOverlay, type ExposedDisk } from './disk-files.js';
import { mountGuest } from './mount.js';
import { inspect } from './inspect.js';
import { sparsify, type SparsifyReport } from './sparsify.js';
import { checkSourceDisk, checkSourceNotMountedRw, sourceSize } from './source-check.js';
import {
  applyFit,
  describeFit,
  layoutFor,
  measureDisk,
  minimumSizes,
  overlayRoom,
  type FittedDisk,
  type TargetSize,
} from './fit/index.js';
import type { Inspection } from '../guest/types.js';
import type { DeviceMapping } from '../guest/device-names.js';
import { planFixups, applyFixups, renderDryRun, decideBoot, type BootDecision } from '../fixups/index.js';
import type { FixupOptions, PlannedFixup } from '../fixups/types.js';
import type { ExportOutput } from './outputs/types.js';
import { streamOva, type StreamedDisk } from './ova-stream.js';
import {
  formatProjection,
  prestartBlockHasher,
  projectFinalPass,
  streamOvaDelta,
  type BaseMapChoice,
} from './delta/index.js';

export interface ExportOptions {
  disks: string[];
  /** Where the OVA goes (outputs/chooseOutput); needed unless the run sends nothing (--inspect, --dry-run). */
  output?: ExportOutput;
  fixups: FixupOptions;
  /** Skip every fixup (a plain image copy, still sparsified). */
  noFixups?: boolean;
  /**
   * --target-size, by --disk index: the size each exported disk is made
   * (resized filesystems, a new partition table); undefined = as it is.
   */
  targetSizes?: (TargetSize | undefined)[];
  /** --map-device: which exported disk a guest disk name is, where the guest's own view does not say. */
  mapDevice?: DeviceMapping[];
  /** --lvm-as-is: a volume group with LVs we cannot expose is copied untouched instead of refused. */
  lvmAsIs?: boolean;
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
  /** --warm: a pass from the running machine, kept by the stager as a base only (no mount, fixups or trim). */
  warm?: boolean;
  /** --base-map FILE, or --delta with --ssh: send only the blocks that differ from the stager's base (docs/design-delta.md). */
  baseMap?: BaseMapChoice;
  /** --link-rate: bytes/s of the link, for --inspect's projected downtime of a final pass. */
  linkRate?: number;
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
  /** The fit of each disk given --target-size: old and new sizes of the disk and its partitions. */
  fit?: { disk: number; lines: string[] }[];
  disks: StreamedDisk[];
  /** Bytes of the OVA stream we produced. */
  bytesSent: number;
  steps: StepTime[];
  output?: string;
  /** --boot: how the instance boots and why (fixups/boot-mode.ts). */
  boot?: BootDecision;
}

/** A Ganeti-valid instance name from whatever the guest or user gave. */
export function instanceName(raw: string | undefined): string {
  return sanitiseInstanceName(raw ?? '') ?? 'p2v-machine';
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
  // A warm pass reads disks in use on purpose (through the overlay, never writing them): docs/design-delta.md.
  if (!opts.warm) for (const d of opts.disks) await checkSourceNotMountedRw(d);
  const sending = !opts.inspectOnly && !opts.dryRun;
  const output = sending ? opts.output : undefined;
  if (sending && !output)
    throw new P2vError('USAGE', 'no destination given', {
      hint: 'use --ovf (stream to stdout), -o FILE.ova, or --ssh USER@STAGER',
    });
  try {
    // The output next: an existing file, a wrong key or host key must fail before minutes of work, not after.
    if (output) await (output.setupPhase ? timed(output.setupPhase, () => output.setup()) : output.setup());
    const fitted = { ...opts, targetSizes: await fitToTargetDisk(opts, output) };
    return await convertAndSend(fitted, output, { log, print, steps, phases, timed });
  } catch (e) {
    await output?.abort();
    throw e;
  }
}

/**
 * A target that said how big its disk is (--direct) gets disk 0 fitted to it,
 * shrunk or grown (docs/design-fit.md), unless --target-size chose a size for
 * disk 0 that the disk can hold; a machine whose data does not fit is then
 * refused by the fit, before a byte reaches the target.
 */
async function fitToTargetDisk(
  opts: ExportOptions,
  output: ExportOutput | undefined,
): Promise<(TargetSize | undefined)[] | undefined> {
  const room = output?.targetDiskSize;
  if (room === undefined) return opts.targetSizes;
  const asked = opts.targetSizes?.[0];
  if (typeof asked === 'number' && asked > room)
    throw new P2vError(
      'POLICY',
      `--target-size ${formatBytes(asked)} is larger than the target's disk on ${output!.where} (${formatBytes(room)}, ${room} bytes)`,
      {
        hint: `give --target-size ${Math.floor(room / 2 ** 20)}M or less, or leave it out: disk 0 is fitted to the target's disk`,
      },
    );
  if (asked !== undefined || (await sourceSize(opts.disks[0]!)) === room) return opts.targetSizes;
  opts.log.info(`the target's disk is ${formatBytes(room)}: disk 0 is fitted to it`);
  return [room, ...(opts.targetSizes?.slice(1) ?? [])];
}

/**
 * How the instance boots. A warm pass and --no-fixups change nothing, so they
 * only say what the guest does now; otherwise decideBoot decides or refuses.
 */
function bootDecision(opts: ExportOptions, inspection: Inspection): BootDecision {
  const fw = inspection.boot?.firmware;
  if (opts.warm || opts.noFixups)
    return fw === 'uefi'
      ? { firmware: 'uefi', action: 'none', reason: 'UEFI: the guest boots only with UEFI (not changed)' }
      : fw === 'bios' || fw === 'both'
        ? { firmware: 'bios', action: 'none', reason: 'BIOS: the guest has a BIOS boot path (not changed)' }
        : { action: 'none', reason: 'no boot path found' };
  return decideBoot(inspection, { boot: opts.fixups.boot ?? 'auto', hypervisor: opts.fixups.hypervisor });
}

type Timed = <T>(step: string, body: () => Promise<T>) => Promise<T>;

interface Run {
  log: Logger;
  print: (text: string) => void;
  steps: StepTime[];
  phases: PhaseReporter;
  timed: Timed;
}

/** Every stage after the output's setup, in a work dir of its own. */
async function convertAndSend(
  opts: ExportOptions,
  output: ExportOutput | undefined,
  { log, print, steps, phases, timed }: Run,
): Promise<ExportReport> {
  const workDir = await mkdtemp(join(opts.workDir ?? tmpdir(), 'p2v-export-'));
  const removeWork = onExit(`remove ${workDir}`, () => rm(workDir, { recursive: true, force: true }));

  // Released newest first in the finally below: FUSE views, then overlays, then the work dir.
  const overlays: Overlay[] = [];
  const exposed: ExposedDisk[] = [];
  const sizes: number[] = [];
  const targets = opts.targetSizes ?? [];
  // A final pass digests every block on a worker thread: it boots while the overlay starts.
  if (opts.baseMap) prestartBlockHasher();
  try {
    await timed('overlay', async () => {
      const meter = phases.meter('overlay', opts.disks.length, { unit: 'items', itemName: 'disks' });
      meter.update(0);
      for (const [i, d] of opts.disks.entries()) {
        const size = await sourceSize(d);
        sizes.push(size);
        const room = overlayRoom(size, targets[i]);
        const ov = await openOverlay(d, { workDir, ...(room ? { room: { sourceSize: size, bytes: room } } : {}) });
        overlays.push(ov);
        exposed.push(await exposeOverlay(ov, workDir));
        meter.update(overlays.length);
      }
      meter.finish();
    });

    const inspection = await timed('inspect', () =>
      inspect(
        // The source's own size: a fit's overlay is larger than the disk it covers.
        opts.disks.map((source, i) => ({ source, exposed: exposed[i]!, size: sizes[i]! })),
        { workDir, log, mapDevice: opts.mapDevice, lvmAsIs: opts.lvmAsIs },
      ),
    );
    if (opts.inspectOnly) {
      const minimums = await minimumSizes(
        inspection.disks,
        exposed.map((e) => e.path),
        workDir,
      ).catch((e: unknown) => {
        log.warn(`cannot measure the smallest size of the disks: ${(e as Error).message}`);
        return [];
      });
      minimums.forEach((m, i) => {
        if (m !== undefined) inspection.disks[i]!.minimumSize = m;
      });
      // On a final pass (a base map given): what it would send and the downtime, sending nothing (exporter/delta).
      const projection = opts.baseMap
        ? await timed('project', () =>
            projectFinalPass(overlays, opts.baseMap!, {
              name: instanceName(opts.name ?? opts.fixups.hostname ?? inspection.os?.hostname),
              compressLevel: opts.compressLevel,
              linkBytesPerSecond: opts.linkRate,
              secondsBefore: steps.reduce((t, st) => t + st.seconds, 0),
              log,
            }),
          )
        : undefined;
      const { formatInspection } = await import('./inspect-format.js');
      print(
        opts.inspectOnly === 'json'
          ? JSON.stringify(projection ? { ...inspection, deltaProjection: projection } : inspection, null, 2)
          : formatInspection(inspection) + (projection ? formatProjection(projection) : ''),
      );
      return { inspection, fixups: [], disks: [], bytesSent: 0, steps };
    }
    if (!inspection.os && !opts.warm)
      log.warn('no operating system found on the source disks: exporting them as data disks, without fixups');
    // A target that is too small is refused now, before minutes of fixups; measured again after them.
    const fitting = inspection.disks.filter((d) => targets[d.index] !== undefined);
    if (fitting.length && !opts.dryRun)
      await timed('measure', async () => {
        for (const d of fitting) layoutFor(d, await measureDisk(d, exposed[d.index]!.path, workDir), targets[d.index]!);
      });

    // --boot: decided (or refused) now, before anything is changed; the descriptor carries the firmware.
    const boot = bootDecision(opts, inspection);
    if (boot.firmware) log.info(`boots with ${boot.reason}`);

    let planned: PlannedFixup[] = [];
    let sparsifyReport: SparsifyReport | undefined;
    // A warm pass mounts nothing: no fixups, no trim; the final pass does them (warmPass in exporter/delta).
    if (inspection.os && !opts.warm) {
      const guest = await timed('mount', () =>
        mountGuest(inspection, exposed, workDir, { readOnly: false, warn: (m) => log.warn(m) }),
      );
      try {
        const ctx = { root: guest.root, inspection, options: opts.fixups, log, diskFiles: exposed.map((e) => e.path) };
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
    const fitted: (FittedDisk | undefined)[] = [];
    if (fitting.length)
      await timed('fit', async () => {
        for (const d of fitting) {
          const file = exposed[d.index]!.path;
          const layout = layoutFor(d, await measureDisk(d, file, workDir), targets[d.index]!);
          fitted[d.index] = await applyFit(d, file, layout, { workDir, log });
        }
      });
    // The FUSE view must be gone before we read the overlay: unmounting flushes every write into nbdkit.
    for (const e of exposed) await e.close();

    if (!output) throw new Error('nothing to send to'); // runExport checked it
    return await send(opts, output, {
      boot,
      inspection,
      planned,
      sparsifyReport,
      overlays,
      fitted,
      log,
      steps,
      timed,
      phases,
    });
  } finally {
    for (const e of exposed.reverse()) await e.close();
    for (const o of overlays.reverse()) await o.close();
    await removeWork.run();
  }
}

/** The stream stage into the output, then the output's finalize; the NBD connections close before the overlays. */
async function send(
  opts: ExportOptions,
  output: ExportOutput,
  run: {
    boot: BootDecision;
    inspection: Inspection;
    planned: PlannedFixup[];
    sparsifyReport: SparsifyReport | undefined;
    overlays: Overlay[];
    fitted: (FittedDisk | undefined)[];
    log: Logger;
    steps: StepTime[];
    timed: Timed;
    phases: PhaseReporter;
  },
): Promise<ExportReport> {
  const { inspection, planned, overlays, fitted, log, timed, phases } = run;
  const fit = fitted.flatMap((f, disk) => (f ? [{ disk, lines: describeFit(disk, f.layout) }] : []));
  const connections: ExitHandle[] = [];
  try {
    const streamOpts = {
      name: instanceName(opts.name ?? opts.fixups.hostname ?? inspection.os?.hostname),
      inspection,
      planned,
      fitted,
      fitLines: fit.flatMap((f) => f.lines),
      fixups: opts.fixups,
      cpus: opts.cpus,
      memoryMiB: opts.memoryMiB,
      compressLevel: opts.compressLevel,
      chunkSize: opts.chunkSize,
      ganetiOs: opts.ganetiOs,
      warm: opts.warm,
      firmware: run.boot.firmware,
      meter: (total: number) => phases.meter('stream', total),
    };
    // A delta (--base-map) differs only in what each disk's member holds: exporter/delta.
    const sent = await timed('stream', () =>
      opts.baseMap
        ? streamOvaDelta(overlays, output, streamOpts, connections, opts.baseMap, log)
        : streamOva(overlays, output, streamOpts, connections),
    );
    const dataBytes = sent.disks.reduce((n, d) => n + d.dataBytes, 0);
    log.info(
      `sent ${sent.bytesWritten} bytes (${sent.disks.length} disk(s), ${dataBytes} data bytes) to ${output.where}`,
    );
    await timed('finish', async () => {
      await output.finalize();
      // Before the overlays close: each connection talks to its nbdkit.
      for (const h of connections.reverse()) await h.run();
    });
    return {
      inspection,
      fixups: planned,
      sparsify: run.sparsifyReport,
      ...(fit.length ? { fit } : {}),
      disks: sent.disks,
      bytesSent: sent.bytesWritten,
      steps: run.steps,
      output: output.where,
      boot: run.boot,
    };
  } finally {
    for (const h of connections.reverse()) await h.run();
  }
}
