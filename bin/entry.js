// Which build of a CLI bin/ runs: dist/bundle/<tool>.js, the CLI linked into
// one file (scripts/bundle.mjs: a start loads a third as much), unless it is
// missing or older than the module it was made from, as after a bare `tsc`;
// then that module, which is the same code.
import { statSync } from 'node:fs';

const built = (rel) => new URL(`../dist/${rel}`, import.meta.url);
const mtime = (rel) => statSync(built(rel), { throwIfNoEntry: false })?.mtimeMs ?? -1;

export async function runCli(tool, entry) {
  const bundle = `bundle/${tool}.js`;
  const { main } = await import(built(mtime(bundle) >= mtime(entry) ? bundle : entry).href);
  await main(process.argv);
}
