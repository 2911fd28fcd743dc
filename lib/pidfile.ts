/**
 * Waiting for a daemon we started to be ready, by its pid file: nbdkit,
 * nbdfuse and qemu-nbd write it only once they serve (socket bound, FUSE
 * mounted), so a non-empty pid file is the readiness signal, and polling it
 * needs no parsing of their output. The wait ends early, with the
 * program's last words, when the program exits first.
 */
import { stat } from 'node:fs/promises';
import { P2vError } from './errors.js';

export interface PidfileWait {
  /** The program, for the message ("nbdkit"). */
  program: string;
  /** What it was to do, for "nbdkit exited before serving the overlay". */
  readiness: string;
  timeoutMs: number;
  /** What to do when it did not start. */
  hint: string;
}

const sleep = (ms: number) => new Promise<undefined>((r) => setTimeout(() => r(undefined), ms));

/**
 * Resolve once `pidfile` exists and is not empty; reject with
 * P2vError('COMMAND_FAILED') (stderr tail attached) when `child`, the
 * program's run (an execa promise: its result or error carries `stderr`),
 * settles first or the time runs out.
 */
export async function waitForPidfile(pidfile: string, child: Promise<unknown>, w: PidfileWait): Promise<void> {
  let exited = false;
  child.then(
    () => (exited = true),
    () => (exited = true),
  );
  const start = Date.now();
  const deadline = start + w.timeoutMs;
  while (Date.now() < deadline && !exited) {
    const st = await stat(pidfile).catch(() => undefined);
    if (st && st.size > 0) return;
    // nbdkit and nbdfuse are ready in tens of milliseconds: look often at first, then settle.
    await sleep(Date.now() - start < 500 ? 5 : 20);
  }
  const r = (await Promise.race([child.catch((e: unknown) => e), sleep(200)])) as { stderr?: unknown } | undefined;
  const stderr = typeof r?.stderr === 'string' ? r.stderr.trim().split('\n').slice(-5).join('\n') : '';
  throw new P2vError(
    'COMMAND_FAILED',
    exited ? `${w.program} exited before ${w.readiness}` : `${w.program} did not start within ${w.timeoutMs / 1000} s`,
    { stderrTail: stderr || undefined, hint: w.hint },
  );
}
