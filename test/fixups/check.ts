/** Shared checks of the fixup tests: apply a plan, compare trees, re-plan. */
import { expect } from 'vitest';
import { applyFixups } from '../../fixups/runner.js';
import type { Change, Fixup, PlannedFixup } from '../../fixups/types.js';
import type { Inspection } from '../../guest/types.js';
import type { FixupOptions } from '../../fixups/types.js';
import { changedPaths, context, snapshot } from './guests.js';

/** The `after` text of each write, by path. */
export function writes(p: PlannedFixup): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of p.changes) if (c.kind === 'write') out[c.path] = c.after;
  return out;
}

export function kinds(p: PlannedFixup): string[] {
  return p.changes.map(
    (c: Change) =>
      `${c.kind} ${'path' in c ? c.path : 'argv' in c ? c.argv.join(' ') : 'to' in c ? `${c.from} -> ${c.to}` : c.dir}`,
  );
}

/**
 * Apply `plan` to the tree, check that exactly `expectChanged` (host-relative
 * paths) changed on disk, and that planning again finds nothing to do.
 */
export async function applyAndReplan(
  root: string,
  fixup: Fixup,
  inspection: Inspection,
  options: Partial<FixupOptions>,
  plan: PlannedFixup,
  expectChanged: string[],
): Promise<void> {
  const before = await snapshot(root);
  const ctx = context(root, inspection, options);
  await applyFixups(ctx, [plan]);
  const after = await snapshot(root);
  expect(changedPaths(before, after)).toEqual([...expectChanged].sort());
  const again = await fixup.plan(context(root, inspection, options));
  expect(again.changes).toEqual([]);
}
