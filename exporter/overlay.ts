/**
 * Overlay: an nbdkit copy-on-write layer over one source disk. The cow filter
 * opens the source read-only and keeps every write (fixups, fstrim, mkswap) in
 * its own temporary store, so the source is never modified. The overlay is
 * served on a Unix socket in a private directory; nbdkit runs in the
 * foreground as our child with --exit-with-parent, so it dies with us even on
 * SIGKILL, and an exit action stops it on every normal exit path.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onExit, type ExitHandle } from '../lib/exit-actions.js';
import { waitForPidfile } from '../lib/pidfile.js';
import { startProgram } from '../lib/run.js';
import { checkSourceDisk } from './source-check.js';

export interface Overlay {
  /** The source disk (block device or image file) as the user named it. */
  readonly source: string;
  /** Unix socket nbdkit listens on. */
  readonly socket: string;
  /** NBD URI for libnbd tools: nbd+unix:///?socket=… */
  readonly uri: string;
  /** Stop nbdkit and remove the socket dir (idempotent). */
  close(): Promise<void>;
}

export interface OverlayOptions {
  /** Parent directory for the private socket dir (default: $TMPDIR). */
  workDir?: string;
  /** Extra nbdkit arguments before the plugin (e.g. --verbose). */
  nbdkitArgs?: string[];
  /**
   * Bytes the overlay offers past the source's end (fit-to-size builds
   * recreated and grown filesystems there). nbdkit's truncate filter under the
   * cow filter: the room reads as zeros and what is written there stays in the
   * cow store like every other write.
   */
  room?: { sourceSize: number; bytes: number };
}

/**
 * nbdkit's worker threads. Its default, 16, served our reads (8 of 2 MiB in
 * flight, exporter/disk-content.ts) no faster than 4 and cost 2.4 times the
 * CPU (0.24 against 0.10 CPU-s per 200 MB read through the cow filter,
 * nbdkit 1.32): the threads contend for one socket and the filter's lock.
 * On a two-core live system that CPU is taken from the digesting and the
 * compression.
 */
const NBDKIT_THREADS = 4;

/** Start a copy-on-write overlay over `source`. */
export async function openOverlay(source: string, opts: OverlayOptions = {}): Promise<Overlay> {
  // Before nbdkit: its own words for a directory or /dev/null ("use dir=") would mislead.
  await checkSourceDisk(source);
  const dir = await mkdtemp(join(opts.workDir ?? tmpdir(), 'p2v-overlay-'));
  const socket = join(dir, 'nbd.sock');
  const pidfile = join(dir, 'nbdkit.pid');
  const removeDir: ExitHandle = onExit(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  const { child } = await startProgram(
    'nbdkit',
    [
      '--foreground',
      '--exit-with-parent',
      '--unix',
      socket,
      '--pidfile',
      pidfile,
      '--threads',
      String(NBDKIT_THREADS),
      ...(opts.nbdkitArgs ?? []),
      '--filter=cow',
      ...(opts.room?.bytes ? ['--filter=truncate'] : []),
      'file',
      `file=${source}`,
      ...(opts.room?.bytes ? [`truncate=${opts.room.sourceSize + opts.room.bytes}`] : []),
    ],
    { stdin: 'ignore', stdout: 'ignore', stderr: 'pipe', buffer: { stderr: true }, reject: true, cleanup: false },
  );
  child.catch(() => undefined); // observed below and on close
  const kill: ExitHandle = onExit(`stop nbdkit (${source})`, async () => {
    if (child.exitCode === null && !child.killed) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await child.catch(() => undefined);
      clearTimeout(t);
    }
  });
  try {
    await waitForPidfile(pidfile, child, {
      program: 'nbdkit',
      readiness: 'serving the overlay',
      timeoutMs: 15_000,
      hint: "nbdkit's own words are above: check that the source is readable and nbdkit's cow filter is installed (package nbdkit)",
    });
  } catch (e) {
    await kill.run();
    await removeDir.run();
    throw e;
  }
  let closed = false;
  return {
    source,
    socket,
    uri: `nbd+unix:///?socket=${socket}`,
    async close() {
      if (closed) return;
      closed = true;
      await kill.run();
      await removeDir.run();
    },
  };
}
