/**
 * Receive one OVA into the staging area: read the tar stream (verifying the
 * manifest on the fly), admit the descriptor against policy before a single
 * disk byte is written, decode every disk into `<id>.partial/diskN.raw`, and
 * commit (rename to `<id>/`) only when the whole stream was read and every
 * digest matched. Any failure removes the partial dir.
 */
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { onExit, type ExitHandle } from '../lib/exit-actions.js';
import { PhaseReporter, type Progress } from '../lib/progress.js';
import { parseDescriptor } from '../ovf/descriptor/index.js';
import { readOva } from '../ovf/ova/index.js';
import type { MachineDescription, OvfDisk, OvfFile } from '../ovf/types.js';
import { createRawFileSink } from './disk-sink.js';
import { chooseInstanceName } from './instance-name.js';
import { checkOutputsBeforeData } from './output-plan.js';
import { checkDiskSize, checkFitsTarget, checkFreeSpace, expectedStagingBytes } from './policy.js';
import { rawDiskName, stageDisk } from './stage-disk.js';
import { checkStagingQuota, clearDeadPartials } from './housekeeping.js';
import { DEFAULT_IDLE_TIMEOUT_MS, withIdleTimeout } from './idle-timeout.js';
import { checkOutputLimits } from './limits.js';
import { MACHINE_FILE, openStagingArea, type StagingArea } from './staging.js';
import { keepInterruptedBase } from './base-keep.js';
import { MapTap } from './base-map-tap.js';
import { recoverReleasedBase, restoreTakenIn, TakenBase } from './base-take.js';
import { admitDelta, applyDeltaDisk, copyBaseDisks, deltaOf } from './delta-apply.js';
import type { Base } from './base.js';
import { isWarmPass, type DeltaFormat } from '../ovf/delta/index.js';
import type { ImportRequest, StagedDisk, StagedImport } from './types.js';

export { MACHINE_FILE } from './staging.js';

/** Checks on the descriptor alone; throws before any data is written. */
export function admitMachine(
  m: MachineDescription,
  maxDiskSize: number | undefined,
  disk0Target?: { path: string; size: number },
): void {
  if (m.disks.length === 0) {
    throw new P2vError('BAD_OVF', 'the OVF descriptor describes no disks', {
      hint: 'export the machine with at least one disk',
    });
  }
  const refs = new Set<string>();
  for (const d of m.disks) {
    if (d.fileRef !== undefined) {
      if (!m.files.some((f) => f.id === d.fileRef)) {
        throw new P2vError(
          'BAD_OVF',
          `disk ${d.diskId} refers to file "${d.fileRef}", which is not in the References section`,
          {
            hint: 'the OVF descriptor is inconsistent; export again',
          },
        );
      }
      if (refs.has(d.fileRef))
        throw new P2vError('BAD_OVF', `two disks use the same file "${d.fileRef}"`, {
          hint: 'the OVF descriptor is inconsistent; export again',
        });
      refs.add(d.fileRef);
    } else if (d.capacity === undefined) {
      throw new P2vError('BAD_OVF', `disk ${d.diskId} has neither a file nor a capacity`, {
        hint: 'the OVF descriptor is incomplete',
      });
    }
    if (d.capacity !== undefined) checkDiskSize(d, d.capacity, maxDiskSize);
  }
  const first = m.disks[0]!;
  if (first.capacity !== undefined) checkFitsTarget(first.capacity, disk0Target);
}

/** The file's bytes as they go by, for the progress display. */
async function* counted(content: AsyncIterable<Buffer>, progress: Progress): AsyncIterable<Buffer> {
  for await (const chunk of content) {
    progress.add(chunk.length);
    yield chunk;
  }
}

/** A committed import and its staging area (the caller decides whether to keep it). */
export interface Received {
  staged: StagedImport;
  area: StagingArea;
}

export async function receiveOva(req: ImportRequest): Promise<Received> {
  const area = await openStagingArea(req.staging, { keepPartial: req.keepPartial });
  req.logger.debug(`receiving into ${area.dir}`);
  // Ours is claimed (owner.ts) before this looks: it is never taken for a dead one.
  await clearDeadPartials(req.staging, req.logger, (dir) => restoreTakenIn(req.staging, dir, req.logger));
  let deviceTouched = false;
  let machine: MachineDescription | undefined;
  let instanceName = '';
  // A delta (docs/design-delta.md) names its base; it is checked against it at the first file, before any data.
  let delta: DeltaFormat[] | undefined;
  let base: Base | undefined;
  let keepReceived: ExitHandle | undefined;
  // A delta's base is admitted and copied (or taken) as soon as the descriptor is read, while the exporter still digests.
  let prepared: Promise<void> | undefined;
  let taken: TakenBase | undefined;
  let putBack: ExitHandle | undefined;
  try {
    let spaceChecked = false;
    const staged = new Map<number, StagedDisk>();
    const ensureSpace = async (m: MachineDescription) => {
      if (spaceChecked) return;
      // A disk decoded straight onto the target device takes no staging space.
      const stagedDisks = req.disk0Target?.direct ? m.disks.slice(1) : m.disks;
      const expected = expectedStagingBytes(stagedDisks);
      await checkFreeSpace(resolve(req.staging), expected);
      await checkStagingQuota(req.staging, area.dir, expected, req.maxStaging);
      await area.reserve(expected);
      spaceChecked = true;
    };
    const prepareDelta = async (m: MachineDescription, formats: DeltaFormat[], name: string) => {
      await recoverReleasedBase(req.staging, name, req.logger);
      base = await admitDelta(req.staging, m, formats, name);
      await ensureSpace(m);
      // In place when this import becomes the next base anyway and no output shares the base's files.
      if (req.keepBase && !req.disk0Target) {
        taken = await TakenBase.take(base, area.dir, area.id, req.logger);
        if (taken) {
          const t = taken;
          putBack = onExit(`put the base of ${name} back`, () => t.restore());
          return;
        }
      }
      await copyBaseDisks(base, area.dir);
    };

    // readOva also takes a gzip-wrapped tar (Ganeti's ova.ova) and checks
    // every member against the manifest, which must then cover every file.
    const input = withIdleTimeout(req.input, req.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
    const phases = req.phases ?? new PhaseReporter({ mode: req.progress ?? 'none' });
    const result = await phases.run('receive', () =>
      readOva(input, {
        requireManifest: req.requireManifest ?? false,
        parseDescriptor: (xml: string) => {
          const m = parseDescriptor(xml);
          admitMachine(m, req.maxDiskSize, req.disk0Target);
          checkOutputLimits(m, req.outputs);
          instanceName = chooseInstanceName(req.name, [m.ganeti?.name, m.name]);
          checkOutputsBeforeData(m, instanceName, req.outputs, { staging: resolve(req.staging) });
          delta = deltaOf(m) as DeltaFormat[] | undefined;
          if (isWarmPass(m) && !req.keepBase)
            throw new P2vError(
              'USAGE',
              'this is a warm pass (p2v-export --warm): it is only kept as a base, and this stager keeps none',
              {
                hint: 'the stager admin adds --keep-base to p2v-import; or send the final pass from the live image',
              },
            );
          machine = m;
          if (delta) {
            prepared = prepareDelta(m, delta, instanceName);
            prepared.catch(() => undefined); // observed at the first file, or when the import fails first
          }
          return m;
        },
        onFile: async (file: OvfFile, content: AsyncIterable<Buffer>) => {
          // readOva calls parseDescriptor before any file.
          if (!machine) throw new Error('onFile before parseDescriptor');
          if (prepared) await prepared;
          // What a full import receives becomes the machine's base if it stops (an error, a signal): registered
          // after the staging area, so it runs before the area is removed (docs/design-delta.md).
          if (req.keepBase && !delta && !keepReceived && !req.disk0Target?.direct) {
            const [m, name] = [machine, instanceName];
            keepReceived = onExit(`keep what was received as the base of ${name}`, () =>
              keepInterruptedBase(req.staging, name, m, area.dir, req.logger),
            );
          }
          await ensureSpace(machine);
          const index = machine.disks.findIndex((d) => d.fileRef === file.id);
          if (index < 0) {
            req.logger.debug(`${file.href} is not a disk, not kept`);
            // Read it anyway: the manifest covers it.
            for await (const _ of content) void _;
            return;
          }
          const disk = machine.disks[index] as OvfDisk;
          req.logger.debug(`decoding disk ${index} (${disk.diskId}) from ${file.href}`);
          const progress = phases.meter(`receiving disk ${index}`, file.size);
          if (delta && base) {
            staged.set(
              index,
              await applyDeltaDisk(counted(content, progress), {
                dir: area.dir,
                index,
                disk,
                base,
                format: delta[index]!,
                logger: req.logger,
                taken,
              }),
            );
            progress.finish();
            return;
          }
          const tap = req.keepBase && !req.disk0Target?.direct ? new MapTap(area.dir, index) : undefined;
          const done = await stageDisk(counted(content, progress), {
            dir: area.dir,
            index,
            disk,
            file,
            maxDiskSize: req.maxDiskSize,
            admitCapacity: index === 0 ? (c) => checkFitsTarget(c, req.disk0Target) : undefined,
            device: index === 0 && req.disk0Target?.direct ? req.disk0Target.path : undefined,
            onDeviceWrite: () => void (deviceTouched = true),
            logger: req.logger,
            tap,
          }).catch(async (e: unknown) => {
            await tap?.abort();
            throw e;
          });
          const mapDigest = await tap?.finish();
          staged.set(index, mapDigest ? { ...done, mapDigest } : done);
          progress.finish();
        },
      }),
    );
    const m = machine ?? result.machine;
    if (req.requireManifest && !result.manifestFound) {
      throw new P2vError('BAD_MANIFEST', 'the OVA has no manifest and --require-manifest is set', {
        hint: 'export with a manifest (p2v-export always writes one)',
      });
    }
    const disks: StagedDisk[] = [];
    for (const [index, d] of m.disks.entries()) {
      let s = staged.get(index);
      if (!s && d.fileRef !== undefined) {
        const f = m.files.find((x) => x.id === d.fileRef)!;
        throw new P2vError('TRUNCATED', `disk ${d.diskId}: file ${f.href} is missing from the OVA`, {
          hint: 'the OVA was cut short or is incomplete; send it again',
        });
      }
      if (!s) {
        // A blank disk the descriptor asks for (no file): an empty sparse file.
        const path = join(area.dir, rawDiskName(index));
        const sink = await createRawFileSink(path, d.capacity!);
        await sink.finish();
        s = { index, diskId: d.diskId, path, capacity: d.capacity!, dataBytes: 0 };
      }
      disks.push(s);
    }
    await writeFile(
      join(area.dir, MACHINE_FILE),
      JSON.stringify(
        {
          instanceName,
          machine: m,
          verified: result.verified,
          manifestFound: result.manifestFound,
          // Each disk's block map (diskN.map beside it) and its digest, so the result can become a base later
          // without reading the disks again (base-take.ts recoverReleasedBase).
          mapDigests: disks.map((d) => d.mapDigest ?? null),
        },
        null,
        2,
      ) + '\n',
      { mode: 0o600 },
    );
    keepReceived?.cancel();
    if (taken) {
      // Applied and verified: the result is what the import holds; the base dir is replaced once it is kept.
      await taken.release();
      putBack?.cancel();
    }
    const dir = await area.commit();
    req.logger.debug(
      `import ${area.id} complete${result.manifestFound ? ' and verified against its manifest' : ' (no manifest to verify against)'}`,
    );
    const stagedImport: StagedImport = {
      id: area.id,
      dir,
      machine: m,
      instanceName,
      verified: result.manifestFound,
      disks: disks.map((d) => (d.direct ? d : { ...d, path: join(dir, rawDiskName(d.index)) })),
      ...(taken ? { baseTaken: true } : {}),
    };
    return { staged: stagedImport, area };
  } catch (e) {
    // A base copy still running must end before its directory is removed.
    await prepared?.catch(() => undefined);
    // A base taken for an in-place delta goes back, its old bytes replayed, before the area is removed.
    await putBack?.run();
    // What a full import received so far becomes the machine's base, so sending again resumes.
    await keepReceived?.run();
    await area.remove();
    if (deviceTouched && req.disk0Target && e instanceof P2vError) {
      throw new P2vError(e.code, e.message, {
        hint: `${req.disk0Target.path} now holds an incomplete image: send the machine again before booting it${e.hint ? '; ' + e.hint : ''}`,
        cause: e,
        command: e.command,
        stderrTail: e.stderrTail,
      });
    }
    throw e;
  }
}
