/**
 * The layering of the product folders, checked against the imports. Every
 * product .ts file's relative import specifiers (static, `export … from`,
 * dynamic `import()`; comments are blanked first so a header's example does
 * not count) are
 * resolved to a folder, and each edge must run downwards:
 *
 *   rank 0  lib                     (imports nothing of ours)
 *   rank 1  ovf, guest              (lib only)
 *   rank 2  fixups                  (guest, lib)
 *   rank 3  exporter, importer      (exporter: fixups, guest, ovf, lib; importer: ovf, lib)
 *   rank 4  ramboot, ganeti-os
 *   rank 5  bench                   (benchmarks drive exporter/importer/ovf parts directly)
 *
 * A folder may import its own files and any folder of a lower rank, never one
 * of the same or a higher rank; on top of that importer never imports fixups
 * (the stager does not change guests), and fixups never import exporter or
 * importer (already implied by the ranks, stated so a reorder cannot lose it).
 * Edges found legitimate when this test was written and kept by the order:
 * exporter → ovf (it writes the OVA), exporter → fixups (the supervisor runs
 * them), bench → exporter/importer (benchmark children). No product file
 * imports from test/.
 *
 * docs/design.md draws the same picture; change both together.
 */
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');

const RANK: Record<string, number> = {
  lib: 0,
  ovf: 1,
  guest: 1,
  fixups: 2,
  exporter: 3,
  importer: 3,
  ramboot: 4,
  'ganeti-os': 4,
  bench: 5,
};

const FORBIDDEN: Record<string, string[]> = {
  importer: ['exporter', 'fixups'],
  fixups: ['exporter', 'importer'],
};

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await tsFiles(p)));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The source with comments turned into spaces (strings and templates kept, so `'//'` stays). */
function withoutComments(src: string): string {
  let out = '';
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '/' && src[i + 1] === '/') {
      while (i < src.length && src[i] !== '\n') ((out += ' '), i++);
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? src.length : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (c === "'" || c === '"' || c === '`') {
      let j = i + 1;
      while (j < src.length && src[j] !== c) j += src[j] === '\\' ? 2 : 1;
      out += src.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Module specifiers of `import … from`, `export … from`, `import '…'` and `import('…')`. */
function importSpecifiers(src: string): string[] {
  const code = withoutComments(src);
  const out: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^;'"`]*?\bfrom\s*(['"])([^'"]+)\1/g,
    /\bimport\s*(['"])([^'"]+)\1/g,
    /\bimport\s*\(\s*(['"])([^'"]+)\1\s*\)/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) out.push(m[2]!);
  return out;
}

interface Edge {
  file: string;
  spec: string;
  from: string;
  to: string;
}

/** Every relative import of every product file, as (from folder, to folder or path). */
async function edges(): Promise<Edge[]> {
  const out: Edge[] = [];
  for (const folder of Object.keys(RANK)) {
    for (const file of await tsFiles(join(ROOT, folder))) {
      for (const spec of importSpecifiers(await readFile(file, 'utf8'))) {
        if (!spec.startsWith('.')) continue;
        const target = relative(ROOT, resolve(dirname(file), spec));
        out.push({ file: relative(ROOT, file), spec, from: folder, to: target.split('/')[0]! });
      }
    }
  }
  return out;
}

/** Why an edge breaks the layering, or null when it is allowed. */
function violation(e: Edge): string | null {
  if (e.to === e.from) return null;
  if (e.to === 'test') return `${e.file} imports ${e.spec}: product code never imports test/`;
  const to = RANK[e.to];
  if (to === undefined) return `${e.file} imports ${e.spec}, outside the product folders`;
  if (FORBIDDEN[e.from]?.includes(e.to)) return `${e.file} imports ${e.spec}: ${e.from} never imports ${e.to}`;
  if (to >= RANK[e.from]!)
    return `${e.file} imports ${e.spec}: ${e.from} (rank ${RANK[e.from]}) → ${e.to} (rank ${to}) runs upward or sideways`;
  return null;
}

describe('layering', () => {
  it('the rule itself refuses upward, sideways and test edges', () => {
    const e = (from: string, to: string) => ({ file: `${from}/x.ts`, spec: `../${to}/y.js`, from, to });
    expect(violation(e('fixups', 'exporter'))).toMatch(/never imports exporter/);
    expect(violation(e('guest', 'fixups'))).toMatch(/upward/);
    expect(violation(e('exporter', 'importer'))).toMatch(/sideways/);
    expect(violation(e('importer', 'fixups'))).toMatch(/never imports fixups/);
    expect(violation(e('lib', 'test'))).toMatch(/never imports test/);
    expect(violation(e('exporter', 'fixups'))).toBeNull();
    expect(violation(e('fixups', 'guest'))).toBeNull();
  });

  it('finds static, multi-line, re-export, side-effect and dynamic imports, not commented ones', () => {
    const src = [
      "import { a,\n  b } from '../lib/a.js';",
      "export type { T } from './t.js';",
      "import '../guest/side.js';",
      "const m = await import('./late.js');",
      "// import { x } from '../exporter/x.js';",
      "/* export * from '../importer/y.js' */",
      "const url = 'http://example.org/';",
    ].join('\n');
    expect(importSpecifiers(src).sort()).toEqual(['../guest/side.js', '../lib/a.js', './late.js', './t.js']);
  });

  it('every product import runs downward', async () => {
    const all = await edges();
    // The parser must have seen the imports at all, or the check below proves nothing.
    expect(all.filter((e) => e.from === 'exporter' && e.to === 'lib').length).toBeGreaterThan(10);
    expect(all.map(violation).filter((v) => v !== null)).toEqual([]);
  });
});
