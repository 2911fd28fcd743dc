/**
 * One whole `p2v-import` run: check and hold the output directories, receive
 * the OVA into staging, write every requested output from the committed
 * import, then drop the staged copy (kept when no output was asked for: then
 * it is the result, or with --keep-staged). A filesystem error anywhere comes
 * out in words (fs-errors.ts); in the output phase it also says where the
 * verified staged copy was kept.
 */
import { resolve } from 'node:path';
import { targetSize } from './disk-sink.js';
import { fsErrorMeasured, isErrno, withSpaceFigures } from './fs-errors.js';
import { withKeptHint, writeOutputsReporting } from './output-phases.js';
import { closeOutputPlaces, openOutputPlaces } from './output-plan.js';
import { receiveOva } from './receive.js';
import { keepCompleteBase } from './base-keep.js';
import { isWarmPass } from '../ovf/delta/index.js';
import type { ImportRequest, ImportResult } from './types.js';
import { P2vError } from '../lib/errors.js';
import { onExit } from '../lib/exit-actions.js';

export interface ImportRunOptions extends ImportRequest {
  hypervisor: string;
  /** --uefi-kvm-extra (config-ini.ts). */
  uefiKvmExtra?: string;
}

export async function importOva(req: ImportRunOptions): Promise<ImportResult> {
  // Size the target device before reading anything: disk 0 must fit.
  let disk0Target = req.disk0Target;
  for (const o of req.outputs) {
    if (o.kind === 'device') {
      const size = await targetSize(o.path).catch((e: unknown) => {
        if (e instanceof P2vError) throw e;
        throw new P2vError('USAGE', `cannot open ${o.path}: ${(e as Error).message}`, {
          hint: 'give --device an existing disk',
          cause: e,
        });
      });
      // Alone, the device is decoded into as the stream arrives; with other outputs it is written from the staged copy.
      disk0Target = { path: o.path, size, direct: req.outputs.length === 1 };
    }
  }
  // The output directories are checked (no symbolic link, a directory) and held open from here on.
  const places = await openOutputPlaces(req.outputs);
  try {
    return await receiveAndWrite(req, disk0Target, places);
  } finally {
    await closeOutputPlaces(places);
  }
}

async function receiveAndWrite(
  req: ImportRunOptions,
  disk0Target: ImportRunOptions['disk0Target'],
  places: Awaited<ReturnType<typeof openOutputPlaces>>,
): Promise<ImportResult> {
  const staging = resolve(req.staging);
  const { staged, area } = await receiveOva({ ...req, disk0Target }).catch(async (e: unknown) => {
    // An errno from staging (full, read-only, removed): the partial import is gone by now, so the figures are right.
    if (!isErrno(e)) throw await withSpaceFigures(e);
    const path = e.path && !e.path.startsWith('/proc/') ? e.path : staging;
    throw await fsErrorMeasured(e, {
      path,
      action: 'write',
      place: path.startsWith(staging) ? staging : undefined,
    });
  });
  if (isWarmPass(staged.machine)) {
    // A warm pass (p2v-export --warm) is a base and nothing else: no outputs from an unfixed, running copy.
    await keepCompleteBase(req.staging, staged, { move: true, logger: req.logger });
    await area.remove();
    req.logger.info(`warm pass of ${staged.instanceName} kept as its base; outputs come with the final pass`);
    return { staged, written: [] };
  }
  // A delta applied in place took the base's disks: until the result is kept as the base, a signal must not
  // remove it with the staged import (the old base has no disks left), so it is moved into the base first.
  const keepTaken =
    staged.baseTaken && req.keepBase
      ? onExit(`keep the verified result as the base of ${staged.instanceName}`, () =>
          keepCompleteBase(req.staging, staged, { move: true, logger: req.logger }),
        )
      : undefined;
  try {
    const written = await writeOutputsReporting(staged, req.outputs, {
      os: req.os,
      hypervisor: req.hypervisor,
      nic: req.nic,
      uefiKvmExtra: req.uefiKvmExtra,
      logger: req.logger,
      phases: req.phases,
      places,
    });
    const keepStaged = req.outputs.length === 0 || req.keepStaged;
    // The machine's base for the next delta: moved out of the staged copy when that goes next, else copied.
    keepTaken?.cancel();
    if (req.keepBase) await keepCompleteBase(req.staging, staged, { move: !keepStaged, logger: req.logger });
    if (keepStaged) {
      area.keep();
      written.unshift(staged.dir);
    } else {
      await area.remove();
    }
    return { staged, written };
  } catch (caught) {
    // The staged import itself is good: keep it so the outputs can be retried.
    area.keep();
    // Its disks were the base's own (a delta applied in place): the verified result is the base from now on.
    if (keepTaken) {
      keepTaken.cancel();
      await keepCompleteBase(req.staging, staged, { move: false, logger: req.logger });
    }
    // Every fs call of the outputs already says what failed; an errno that slipped through still gets words.
    const e = isErrno(caught)
      ? await fsErrorMeasured(caught, { path: caught.path ?? 'an output', action: 'write' })
      : caught;
    if (e instanceof P2vError) throw withKeptHint(e, `the verified import stays in ${staged.dir}`);
    throw e;
  }
}
