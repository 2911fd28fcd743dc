/**
 * site-hooks (--hooks DIR): the site's own executables, run after our fixups
 * in name order (bytewise, like run-parts), each with the guest mounted:
 *   P2V_GUEST_ROOT  host path of the guest's root
 *   P2V_INSPECTION  path of a JSON file with the Inspection
 *   P2V_HYPERVISOR  kvm, xen-pvm or xen-hvm
 * Their output is logged line by line; a non-zero exit aborts the export.
 * Hooks run on the host (they may chroot themselves); --dry-run lists them.
 * Non-executable files (README, a disabled hook) are skipped with a warning.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { startProgram } from '../lib/run.js';
import { P2vError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { bytewise } from '../guest/files.js';
import type { Fixup, FixupContext, PlannedFixup } from './types.js';

export interface HookEnvironment {
  P2V_GUEST_ROOT: string;
  P2V_INSPECTION: string;
  P2V_HYPERVISOR: string;
}

export const siteHooks: Fixup = {
  name: 'site-hooks',
  description: 'run the executables of --hooks DIR in name order with the guest mounted',
  appliesTo: (o) => o.hooksDir !== undefined,
  async plan(ctx: FixupContext): Promise<PlannedFixup> {
    const out: PlannedFixup = { fixup: 'site-hooks', summary: [], changes: [] };
    const dir = ctx.options.hooksDir;
    if (dir === undefined) return out;
    let names: string[];
    try {
      names = (await readdir(dir)).sort(bytewise);
    } catch (e) {
      throw new P2vError('USAGE', `cannot read the hooks directory ${dir}: ${(e as Error).message}`, {
        hint: 'give --hooks an existing directory of executables',
        cause: e,
      });
    }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const path = join(dir, name);
      const st = await stat(path).catch(() => null);
      if (!st?.isFile() || (st.mode & 0o111) === 0) {
        ctx.log.warn(`site hook ${path} is not an executable file: skipped`);
        continue;
      }
      out.changes.push({ kind: 'hook', path, reason: `site hook ${name}` });
      out.summary.push(`ran site hook ${name}`);
    }
    return out;
  },
};

function logLines(stream: Readable, each: (line: string) => void): Promise<void> {
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  rl.on('line', each);
  return new Promise((resolve) => rl.once('close', resolve));
}

/** Run one hook; its output goes to the log line by line. Throws HOOK_FAILED. */
export async function runHook(path: string, env: HookEnvironment, log: Logger): Promise<void> {
  const name = path.split('/').pop()!;
  const { child } = await startProgram(path, [], { env: { ...env }, buffer: false, reject: false, stdin: 'ignore' });
  const done = Promise.all([
    logLines(child.stdout! as Readable, (l) => log.info(`hook ${name}: ${l}`)),
    logLines(child.stderr! as Readable, (l) => log.warn(`hook ${name}: ${l}`)),
  ]);
  const r = await child;
  await done;
  if (r.failed) {
    const how = r.exitCode !== undefined ? `exit status ${r.exitCode}` : (r.signal ?? r.shortMessage ?? 'failed');
    throw new P2vError('HOOK_FAILED', `site hook ${name} failed (${how})`, {
      hint: `fix ${path} (its output is above) or remove it from the hooks directory, then retry`,
    });
  }
}
