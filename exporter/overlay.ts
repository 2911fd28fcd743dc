/**
 * Overlay: an nbdkit copy-on-write layer over one source disk. The cow filter
 * opens the source read-only and keeps every write (fixups, fstrim, mkswap) in
 * its own temporary store, so the source is never modified. The overlay is
 * served on a Unix socket in a private directory; nbdkit runs in the
 * foreground as our child with --exit-with-parent, so it dies with us even on
 * SIGKILL, and an exit action stops it on every normal exit path.
 */
import { execa, type ResultPromise } from 'execa';
import { mkdtemp, rm, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { onExit, type ExitHandle } from '../lib/exit-actions.js';
import { requireProgram } from '../lib/run.js';
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
}

async function waitForFile(path: string, child: ResultPromise, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.then(
    () => (exited = true),
    () => (exited = true),
  );
  while (Date.now() < deadline) {
    if (exited) break;
    try {
      await access(path);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const r = await Promise.race([
    child.catch((e: unknown) => e),
    new Promise((r) => setTimeout(() => r(undefined), 200)),
  ]);
  const stderr = (r as { stderr?: string } | undefined)?.stderr;
  throw new P2vError(
    'COMMAND_FAILED',
    exited ? 'nbdkit exited before serving the overlay' : 'nbdkit did not start within ' + timeoutMs / 1000 + ' s',
    {
      stderrTail: typeof stderr === 'string' ? stderr.trim().split('\n').slice(-5).join('\n') : undefined,
      hint: "nbdkit's own words are above: check that the source is readable and nbdkit's cow filter is installed (package nbdkit)",
    },
  );
}

/** Start a copy-on-write overlay over `source`. */
export async function openOverlay(source: string, opts: OverlayOptions = {}): Promise<Overlay> {
  // Before nbdkit: its own words for a directory or /dev/null ("use dir=") would mislead.
  await checkSourceDisk(source);
  await requireProgram('nbdkit');
  const dir = await mkdtemp(join(opts.workDir ?? tmpdir(), 'p2v-overlay-'));
  const socket = join(dir, 'nbd.sock');
  const pidfile = join(dir, 'nbdkit.pid');
  const removeDir: ExitHandle = onExit(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  const child = execa(
    'nbdkit',
    [
      '--foreground',
      '--exit-with-parent',
      '--unix',
      socket,
      '--pidfile',
      pidfile,
      ...(opts.nbdkitArgs ?? []),
      '--filter=cow',
      'file',
      `file=${source}`,
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
    await waitForFile(pidfile, child, 15_000);
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
