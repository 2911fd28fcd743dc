/**
 * The delta side of p2v-export (docs/design-delta.md): --base-map sends only
 * the blocks that differ from the stager's base of this machine.
 */
import type { ExitHandle } from '../../lib/exit-actions.js';
import type { Overlay } from '../overlay.js';
import type { ExportOutput } from '../outputs/types.js';
import { describeMachine, streamOva, type OvaStreamOptions, type OvaStreamResult } from '../ova-stream.js';
import type { SshOptions } from '../ssh-transport.js';
import { baseMapFile, type BaseMapSource } from './base-map.js';
import { streamDelta } from './delta-stream.js';
import { sshBaseMap } from './ssh-map.js';
import { projectDelta, type DeltaProjection, type ProjectOptions } from './projection.js';

/** Where the base map comes from: a file (--base-map FILE) or the stager (--ssh with --delta). */
export type BaseMapChoice = string | { ssh: SshOptions };

export { baseMapFile, checkBaseMap, checkBaseFits, type BaseMapSource } from './base-map.js';
export { sshBaseMap, mapCommand } from './ssh-map.js';
export { prestartBlockHasher } from './block-hasher.js';
export { streamDelta, type DeltaStreamResult, type DeltaDiskReport } from './delta-stream.js';
export { formatProjection, type DeltaProjection } from './projection.js';

/**
 * --inspect with a base map: the final pass's projection (projection.ts),
 * or undefined when the stager has no base for this machine yet (the final
 * pass would then be a full export).
 */
export async function projectFinalPass(
  overlays: Overlay[],
  choice: BaseMapChoice,
  opts: ProjectOptions & { log: { info(m: string): void } },
): Promise<DeltaProjection | undefined> {
  const baseMap = typeof choice === 'string' ? baseMapFile(choice) : await sshBaseMap(choice.ssh, opts.name);
  if (!baseMap) {
    opts.log.info(`the stager has no base for ${opts.name} yet: the final pass would be a full export`);
    return undefined;
  }
  return projectDelta(overlays, baseMap, opts);
}

/**
 * streamOva's counterpart for a delta: same options, plus where the base map
 * is. A stager with no base for this machine yet gets a full export.
 */
export async function streamOvaDelta(
  overlays: Overlay[],
  output: ExportOutput,
  opts: OvaStreamOptions,
  connections: ExitHandle[],
  choice: BaseMapChoice,
  log?: { info(m: string): void },
): Promise<OvaStreamResult & { delta?: Awaited<ReturnType<typeof streamDelta>> }> {
  let baseMap: BaseMapSource | undefined;
  if (typeof choice === 'string') baseMap = baseMapFile(choice);
  else {
    baseMap = await sshBaseMap(choice.ssh, opts.name);
    if (!baseMap) {
      log?.info(`the stager has no base for ${opts.name} yet: sending a full export`);
      return streamOva(overlays, output, opts, connections);
    }
  }
  const delta = await streamDelta(
    overlays,
    output,
    {
      name: opts.name,
      machine: (files, disks) => describeMachine(opts, files, disks),
      baseMap,
      fitted: opts.fitted,
      compressLevel: opts.compressLevel,
      chunkSize: opts.chunkSize,
      meter: opts.meter,
    },
    connections,
  );
  return {
    delta,
    bytesWritten: delta.bytesWritten,
    disks: delta.disks.map((d) => ({ source: d.source, capacity: d.capacity, dataBytes: d.dataBytes, vmdkBytes: 0 })),
  };
}
