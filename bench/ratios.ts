/** Comparisons that hold on a busy machine, shared by the exporter and importer benches. */
import type { ProcessRun } from './harness.js';

/** Their CPU seconds over ours (> 1: we spend less CPU): unlike wall time, it does not depend on free cores. */
export function cpuRatio(theirs: ProcessRun, ours: ProcessRun): string {
  return theirs.cpu === null || ours.cpu === null ? 'CPU ratio ?' : `CPU ratio ${(theirs.cpu / ours.cpu).toFixed(2)}×`;
}
