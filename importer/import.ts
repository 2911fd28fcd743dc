/**
 * One whole `p2v-import` run: receive the OVA into staging, write every
 * requested output from the committed import, then drop the staged copy
 * (kept when no output was asked for: then it is the result, or with
 * --keep-staged).
 */
import { targetSize } from './disk-sink.js';
import { writeOutputs } from './outputs.js';
import { receiveOva } from './receive.js';
import type { ImportRequest, ImportResult } from './types.js';
import { P2vError } from '../lib/errors.js';

export interface ImportRunOptions extends ImportRequest {
  hypervisor: string;
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
  const { staged, area } = await receiveOva({ ...req, disk0Target });
  try {
    const written = await writeOutputs(staged, req.outputs, {
      os: req.os,
      hypervisor: req.hypervisor,
      nic: req.nic,
      logger: req.logger,
    });
    if (req.outputs.length === 0 || req.keepStaged) {
      area.keep();
      written.unshift(staged.dir);
    } else {
      await area.remove();
    }
    return { staged, written };
  } catch (e) {
    // The staged import itself is good: keep it so the outputs can be retried.
    area.keep();
    const keptHint = `the verified import stays in ${staged.dir}`;
    if (e instanceof P2vError)
      throw new P2vError(e.code, e.message, {
        hint: e.hint ? `${e.hint}; ${keptHint}` : keptHint,
        cause: e,
        command: e.command,
        stderrTail: e.stderrTail,
      });
    throw e;
  }
}
