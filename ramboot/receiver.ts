/**
 * bundleReceiver: the receiver of the direct path as a self-contained folder
 * that the p2v-target OS definition copies into the bootstrap system
 * (`receiver_dir`, default /var/lib/ganeti-p2v/receiver): package.json,
 * bin/p2v-import.js and bin/entry.js, the compiled dist/ (with bundle/, the
 * CLI linked into one file, its timestamps kept) and only the production
 * dependencies. It is the very p2v-import of this installation, so the
 * target runs the same `--device` code as the stager. The node that runs it
 * on the target comes from Debian (trixie's nodejs 20): none is bundled.
 *
 *   const r = await bundleReceiver({ output: '/var/lib/ganeti-p2v/receiver' });
 *
 * The folder is written as OUTPUT.tmp-PID and swapped in with renames, so
 * `gnt-instance add` never copies a half-written bundle.
 */
import { cp, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { P2vError } from '../lib/errors.js';

export interface ReceiverBundleOptions {
  /** Folder to write (replaced when it exists). */
  output: string;
  /** The ganeti-p2v installation to bundle; default the one running this code. */
  source?: string;
}

export interface ReceiverBundleReport {
  output: string;
  version: string;
  /** Production packages copied, as paths under node_modules/. */
  packages: string[];
}

/** Where p2v-target's receiver_dir points by default. */
export const DEFAULT_RECEIVER_DIR = '/var/lib/ganeti-p2v/receiver';

/** dist/ folders the receiver never loads (benchmarks). */
const SKIP_DIST = new Set(['bench']);

/** The installation this module runs from: two levels above dist/ramboot. */
export function installationRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

interface PackageJson {
  name?: string;
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

async function readPackage(dir: string): Promise<PackageJson> {
  return JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as PackageJson;
}

/**
 * Where Node would find package NAME required from package folder FROM: its
 * own node_modules, then each ancestor's (node's resolution, limited to ROOT).
 */
async function locate(root: string, from: string, name: string): Promise<string | undefined> {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (await exists(join(candidate, 'package.json'))) return candidate;
    if (dir === root || !dir.startsWith(root)) return undefined;
  }
}

/** Every production package folder reachable from ROOT's package.json, relative to ROOT. */
export async function productionPackages(root: string): Promise<string[]> {
  const found = new Set<string>();
  const queue: string[] = [root];
  while (queue.length > 0) {
    const dir = queue.shift()!;
    const pkg = await readPackage(dir);
    const optional = new Set(Object.keys(pkg.optionalDependencies ?? {}));
    for (const name of new Set([...Object.keys(pkg.dependencies ?? {}), ...optional])) {
      const at = await locate(root, dir, name);
      if (!at) {
        if (optional.has(name)) continue;
        throw new P2vError('IO', `dependency ${name} of ${pkg.name ?? dir} is not installed under ${root}`, {
          hint: 'run npm ci in the ganeti-p2v installation, then bundle again',
        });
      }
      const rel = at.slice(root.length + 1);
      if (found.has(rel)) continue;
      found.add(rel);
      queue.push(at);
    }
  }
  return [...found].sort();
}

export async function bundleReceiver(opts: ReceiverBundleOptions): Promise<ReceiverBundleReport> {
  const source = resolve(opts.source ?? installationRoot());
  const output = resolve(opts.output);
  for (const need of ['package.json', 'bin/p2v-import.js', 'bin/entry.js', 'dist/importer/cli.js']) {
    if (!(await exists(join(source, need))))
      throw new P2vError('IO', `${join(source, need)} is missing: not a built ganeti-p2v installation`, {
        hint: 'build it first (npm ci && npm run build), or pass --source DIR',
      });
  }
  const version = (await readPackage(source)).version ?? 'unknown';
  const packages = await productionPackages(source);
  const stage = `${output}.tmp-${process.pid}`;
  const old = `${output}.old-${process.pid}`;
  try {
    await rm(stage, { recursive: true, force: true });
    await mkdir(join(stage, 'bin'), { recursive: true });
    await cp(join(source, 'package.json'), join(stage, 'package.json'));
    for (const f of ['bin/p2v-import.js', 'bin/entry.js']) await cp(join(source, f), join(stage, f));
    await cp(join(source, 'dist'), join(stage, 'dist'), {
      recursive: true,
      // bin/entry.js runs dist/bundle/ only when it is not older than dist/: copied in any order, it would not be.
      preserveTimestamps: true,
      filter: (src) => !SKIP_DIST.has(src.slice(join(source, 'dist').length + 1).split('/')[0]!),
    });
    // Parents before children: a nested package folder lands inside its parent's copy.
    for (const rel of packages) {
      if (await exists(join(stage, rel))) continue;
      await cp(join(source, rel), join(stage, rel), {
        recursive: true,
        verbatimSymlinks: true,
        // A parent package's own nested node_modules is copied package by package.
        filter: (src) => !src.slice(join(source, rel).length).startsWith('/node_modules/'),
      });
    }
    const existed = await exists(output);
    if (existed) await rename(output, old);
    await rename(stage, output);
    if (existed) await rm(old, { recursive: true, force: true });
  } catch (e) {
    await rm(stage, { recursive: true, force: true });
    if (e instanceof P2vError) throw e;
    throw new P2vError('IO', `cannot write the receiver bundle ${output}: ${(e as Error).message}`, {
      hint: 'check the parent directory exists and is writable (run as root on the node)',
      cause: e,
    });
  }
  return { output, version, packages };
}
