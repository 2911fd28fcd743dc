#!/usr/bin/env node
// Links each CLI of a built dist/ into one file, DIST/bundle/<tool>.js, which bin/ runs.
//   node scripts/bundle.mjs [DIST]      (npm run build runs it after tsc; DIST defaults to dist)
// Why: started from dist/, a CLI loads its ~190 ES modules one by one, and
// resolving, reading and linking them costs the exporter 0.19 CPU-s before it
// does anything. A final delta pass starts three CLIs at once on two cores
// (exporter, map fetch, importer), so that start-up is a fifth of its time.
// One linked file loads in a third of it. dist/ stays as it was: the bundle is
// made from it, tests and tools import its modules, and bin/ falls back to it
// when the bundle is missing or older (a bare `tsc` after `npm run build`).
import { build } from 'esbuild';
import { join, resolve } from 'node:path';

/** Tool name → its entry module in dist/. hash-worker is the exporter's hashing thread, loaded beside it by URL. */
const ENTRIES = {
  'p2v-export': 'exporter/cli.js',
  'p2v-import': 'importer/cli.js',
  'p2v-ganeti-os': 'ganeti-os/cli.js',
  'p2v-ramboot': 'ramboot/cli.js',
  'hash-worker': 'exporter/delta/hash-worker.js',
};

const dist = resolve(process.argv[2] ?? 'dist');
await build({
  entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([tool, entry]) => [tool, join(dist, entry)])),
  outdir: join(dist, 'bundle'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // ssh2 loads native addons by relative path; it is imported only by --ssh and stays in node_modules.
  external: ['ssh2'],
  // The CommonJS dependencies (xml2js, tar-stream) call require() for node's own modules.
  banner: {
    js: "import { createRequire as p2vCreateRequire } from 'node:module'; const require = p2vCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
