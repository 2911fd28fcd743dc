/**
 * Test helpers: run a real NBD server (nbdkit, or qemu-nbd for a second
 * implementation) on a Unix socket in `dir`, wait until it serves, and stop
 * it (always: callers use try/finally or withNbdkit).
 */
import { execa, type ResultPromise } from 'execa';
import { join } from 'node:path';
import type { NbdExtent } from '../../../exporter/nbd/index.js';
import { waitForPidfile } from '../../../lib/pidfile.js';
import { writeSparseImage } from '../../helpers/sparse-image.js';

export interface Nbdkit {
  socket: string;
  uri: string;
  child: ResultPromise;
  stop(): Promise<void>;
}

let serial = 0;

export function startNbdkit(dir: string, args: string[]): Promise<Nbdkit> {
  return startServer(dir, 'nbdkit', (socket, pidfile) => [
    '--foreground',
    '--exit-with-parent',
    '--unix',
    socket,
    '--pidfile',
    pidfile,
    ...args,
  ]);
}

/** qemu-nbd serving `image` (raw) read-write, for as many connections as the test makes. */
export function startQemuNbd(dir: string, image: string): Promise<Nbdkit> {
  return startServer(dir, 'qemu-nbd', (socket, pidfile) => [
    '--persistent',
    '--shared=8',
    '--format=raw',
    '--socket',
    socket,
    '--pid-file',
    pidfile,
    image,
  ]);
}

async function startServer(
  dir: string,
  program: string,
  argv: (socket: string, pidfile: string) => string[],
): Promise<Nbdkit> {
  const n = ++serial;
  const socket = join(dir, `${program}-${n}.sock`);
  const pidfile = join(dir, `${program}-${n}.pid`);
  const args = argv(socket, pidfile);
  const child = execa(program, args, {
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'pipe',
    reject: false,
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await child;
    }
  };
  try {
    await waitForPidfile(pidfile, child, {
      program,
      readiness: 'serving',
      timeoutMs: 10_000,
      hint: `the test started ${program} ${args.join(' ')}`,
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return { socket, uri: `nbd+unix:///?socket=${socket}`, child, stop };
}

export async function withNbdkit<T>(dir: string, args: string[], body: (k: Nbdkit) => Promise<T>): Promise<T> {
  const k = await startNbdkit(dir, args);
  try {
    return await body(k);
  } finally {
    await k.stop();
  }
}

/** A sparse image with random (so never zero) data at scattered places; returns its path. */
export async function sparseImage(dir: string, size: number, pieces: [number, number][]): Promise<string> {
  const path = join(dir, 'disk.img');
  await writeSparseImage(path, size, pieces);
  return path;
}

/** libnbd's view of the extents (nbdinfo --map --json), merged like our extents(). */
export async function nbdinfoMap(uri: string): Promise<NbdExtent[]> {
  const { stdout } = await execa('nbdinfo', ['--map', '--json', uri]);
  const out: NbdExtent[] = [];
  for (const e of JSON.parse(stdout) as { offset: number; length: number; type: number }[]) {
    const hole = (e.type & 1) !== 0;
    const zero = (e.type & 2) !== 0;
    const last = out[out.length - 1];
    if (last && last.hole === hole && last.zero === zero) last.length += e.length;
    else out.push({ offset: e.offset, length: e.length, hole, zero });
  }
  return out;
}
