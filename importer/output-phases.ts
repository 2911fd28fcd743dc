/**
 * The output phase as the progress reporter sees it: each requested output
 * is one phase (`write ganeti-export /srv/p2v/exports`), with a start and an
 * end event. The `receive` phase (with a byte meter per disk, `receiving
 * disk N`) is reported by receive.ts; together they cover every phase of an
 * import, so a reader of `--progress-fd` sees one event stream from the
 * first byte to the last output.
 */
import { P2vError } from '../lib/errors.js';
import { PhaseReporter } from '../lib/progress.js';
import { writeOutputs, type OutputOptions } from './outputs.js';
import type { OutputSpec, StagedImport } from './types.js';

export interface PhaseReporting {
  /** Where the phases are reported (the CLI's TTY display and --progress-fd); none when unset. */
  phases?: PhaseReporter;
}

function where(o: OutputSpec): string {
  switch (o.kind) {
    case 'ova':
      return o.file;
    case 'device':
      return o.path;
    default:
      return o.dir;
  }
}

/** writeOutputs, one output at a time, each one a phase (`write ganeti-export /srv/p2v/exports`). */
export async function writeOutputsReporting(
  staged: StagedImport,
  outputs: OutputSpec[],
  opts: OutputOptions & PhaseReporting,
): Promise<string[]> {
  const phases = opts.phases ?? new PhaseReporter({ mode: 'none' });
  const written: string[] = [];
  for (const o of outputs) {
    written.push(...(await phases.run(`write ${o.kind} ${where(o)}`, () => writeOutputs(staged, [o], opts))));
  }
  return written;
}

/**
 * A failed output's error, its hint extended with where the staged import
 * stays (`the verified import stays in DIR`): the import itself is good, so
 * the operator retries the outputs from there rather than sending again.
 */
export function withKeptHint(e: P2vError, keptHint: string): P2vError {
  return new P2vError(e.code, e.message, {
    hint: e.hint ? `${e.hint}; ${keptHint}` : keptHint,
    cause: e,
    command: e.command,
    stderrTail: e.stderrTail,
  });
}
