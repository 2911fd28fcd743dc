/**
 * --ovf (or -o -): the OVA as a chunked stream on standard output, for
 * `p2v-export --ovf | ssh stager p2v-import`. Also a caller's own Writable
 * (library use), which is ended once the OVA is written; stdout is left open,
 * since the process owns it.
 */
import type { Writable } from 'node:stream';
import type { ExportOutput, OvaSink } from './types.js';

export function stdoutOutput(): ExportOutput {
  return streamOutput(process.stdout, { kind: 'stdout', where: 'stdout', end: false });
}

export function streamOutput(
  stream: Writable,
  how: { kind?: 'stdout' | 'stream'; where?: string; end?: boolean } = {},
): ExportOutput {
  const sink: OvaSink = { mode: 'stream', stream };
  return {
    kind: how.kind ?? 'stream',
    where: how.where ?? 'stream',
    async setup() {},
    async send(write) {
      const result = await write(sink);
      if (how.end ?? true) stream.end();
      return result;
    },
    async finalize() {},
    async abort() {},
  };
}
