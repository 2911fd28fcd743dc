/**
 * Shell steps read from a docs page, so that a test runs exactly what the
 * page tells an admin to type. A step is a fenced ```sh block right after a
 * `<!-- PREFIX: NAME -->` marker line:
 *
 *   <!-- direct-path: add -->
 *   ```sh
 *   gnt-instance add …
 *   ```
 *
 *   readDocSteps(file, 'direct-path')   Map NAME → block text, in page order
 *   settingNames(block)                 the NAME=… assignments of a settings block
 *   shellAssignments(values)            NAME='value' lines for those names
 */
import { readFile } from 'node:fs/promises';

export async function readDocSteps(file: string, prefix: string): Promise<Map<string, string>> {
  const text = await readFile(file, 'utf8');
  const steps = new Map<string, string>();
  const re = new RegExp(`^<!-- ${prefix}: ([\\w-]+) -->\\n(?:\`\`\`sh\\n([\\s\\S]*?)^\`\`\`$)?`, 'gm');
  for (const m of text.matchAll(re)) {
    if (m[2] === undefined) continue; // an end marker, or a marker without a block
    if (steps.has(m[1]!)) throw new Error(`${file}: step ${prefix}: ${m[1]} appears twice`);
    steps.set(m[1]!, m[2]);
  }
  return steps;
}

/** Names assigned at the start of a line (NAME=…), in order. */
export function settingNames(block: string): string[] {
  return [...block.matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]!);
}

export function shellAssignments(values: Record<string, string>): string {
  return Object.entries(values)
    .map(([k, v]) => `${k}='${v.replace(/'/g, `'\\''`)}'`)
    .join('\n');
}
