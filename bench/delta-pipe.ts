/**
 * `p2v-export … --ovf | p2v-import …` as the delta bench runs it: the two
 * built CLIs with this process in the middle counting the bytes on the wire,
 * each end's peak RSS from GNU time, and, for the resume case, the exporter
 * killed once a given number of bytes went through (the importer then sees
 * its input end, as when a link drops).
 */
import { spawn } from 'node:child_process';
import { access } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const GNU_TIME = '/usr/bin/time';

export interface PipeRun {
  seconds: number;
  /** Bytes the exporter wrote that reached the importer. */
  bytes: number;
  exportCode: number | null;
  importCode: number | null;
  exportRss: number | null;
  importRss: number | null;
  exportStderr: string;
  importStderr: string;
}

function binOf(tool: 'p2v-export' | 'p2v-import'): string {
  // The project's bin/ shims, from dist/bench/ (the bench) or bench/ (tests run the sources).
  const here = dirname(fileURLToPath(import.meta.url));
  const root = basename(dirname(here)) === 'dist' ? resolve(here, '..', '..') : resolve(here, '..');
  return join(root, 'bin', `${tool}.js`);
}

async function timePrefix(): Promise<string[]> {
  return access(GNU_TIME).then(
    () => [GNU_TIME, '-f', 'P2V_BENCH_MAXRSS_KIB=%M'],
    () => [],
  );
}

function rssOf(stderr: string): number | null {
  const m = /P2V_BENCH_MAXRSS_KIB=(\d+)/.exec(stderr);
  return m ? Number(m[1]) * 1024 : null;
}

/**
 * `mapFrom`: the exporter gets `--base-map <(p2v-import --staging S
 * --block-map NAME)` from bash, as the user guide writes the final pass: the
 * map is fetched while the exporter starts, inside the measured time.
 */
export async function runPipe(
  exportArgs: string[],
  importArgs: string[],
  killAfter?: number,
  mapFrom?: { staging: string; name: string },
): Promise<PipeRun> {
  // The killed run is not measured: its exporter must be node itself, so SIGTERM runs its clean-up.
  const time = killAfter === undefined ? await timePrefix() : [];
  const argv = (tool: 'p2v-export' | 'p2v-import', args: string[]) => [...time, process.execPath, binOf(tool), ...args];
  const ex = mapFrom
    ? [
        ...time,
        'bash',
        '-c',
        'exec "$0" "$@" --base-map <("$0" "$P2V_IMPORT" --staging "$P2V_STAGING" --block-map "$P2V_NAME")',
        process.execPath,
        binOf('p2v-export'),
        ...exportArgs,
      ]
    : argv('p2v-export', exportArgs);
  const im = argv('p2v-import', importArgs);
  const t0 = process.hrtime.bigint();
  const env = mapFrom
    ? { ...process.env, P2V_IMPORT: binOf('p2v-import'), P2V_STAGING: mapFrom.staging, P2V_NAME: mapFrom.name }
    : process.env;
  const exporter = spawn(ex[0]!, ex.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env });
  const importer = spawn(im[0]!, im.slice(1), { stdio: ['pipe', 'ignore', 'pipe'] });
  let exportStderr = '';
  let importStderr = '';
  exporter.stderr.on('data', (d: Buffer) => (exportStderr += d.toString()));
  importer.stderr.on('data', (d: Buffer) => (importStderr += d.toString()));
  importer.stdin.on('error', () => undefined);
  let bytes = 0;
  let killed = false;
  let importerGone = false;
  // An importer that exits early (refusal) stops reading: drain the exporter so it does not block on a full pipe.
  importer.on('close', () => {
    importerGone = true;
    exporter.stdout.resume();
  });
  exporter.stdout.on('data', (d: Buffer) => {
    if (killed || importerGone) return;
    let piece = d;
    if (killAfter !== undefined && bytes + d.length >= killAfter) {
      piece = d.subarray(0, killAfter - bytes);
      killed = true;
      // The link drops: the exporter is stopped (its exit actions release the overlay and FUSE view).
      exporter.kill('SIGTERM');
    }
    bytes += piece.length;
    if (!importer.stdin.write(piece)) {
      exporter.stdout.pause();
      importer.stdin.once('drain', () => exporter.stdout.resume());
    }
    if (killed) importer.stdin.end();
  });
  exporter.stdout.on('end', () => importer.stdin.end());
  const done = (c: ReturnType<typeof spawn>) => new Promise<number | null>((res) => c.on('close', (code) => res(code)));
  const [exportCode, importCode] = await Promise.all([done(exporter), done(importer)]);
  return {
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    bytes,
    exportCode,
    importCode,
    exportRss: rssOf(exportStderr),
    importRss: rssOf(importStderr),
    exportStderr,
    importStderr,
  };
}

/** `p2v-import --staging S --block-map NAME > file`. */
export async function fetchMap(staging: string, name: string, file: string): Promise<void> {
  const { open } = await import('node:fs/promises');
  const fh = await open(file, 'w');
  try {
    const child = spawn(process.execPath, [binOf('p2v-import'), '--staging', staging, '--block-map', name], {
      stdio: ['ignore', fh.fd, 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((res) => child.on('close', res));
    if (code !== 0) throw new Error(`p2v-import --block-map ${name} exited ${code}: ${err.trim()}`);
  } finally {
    await fh.close();
  }
}

/** `p2v-export --inspect --json ARGS`: the final pass's projection (deltaProjection), sending nothing. */
export async function projectFinal(exportArgs: string[]): Promise<{ bytesToSend: number; downtimeSeconds: number }> {
  const child = spawn(process.execPath, [binOf('p2v-export'), ...exportArgs, '--inspect', '--json', '--quiet'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((res) => child.on('close', res));
  if (code !== 0) throw new Error(`p2v-export --inspect exited ${code}: ${err.trim()}`);
  return (JSON.parse(out) as { deltaProjection: { bytesToSend: number; downtimeSeconds: number } }).deltaProjection;
}
