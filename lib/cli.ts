/**
 * The frame every CLI runs in: parse, run, print a one-line error with its
 * hint, run the exit actions, and exit with the error's status. A closed
 * stdout (EPIPE: the reader went away) is an error, not a crash.
 */
import { exitCodeFor, formatError, P2vError } from './errors.js';
import { runExitActions } from './exit-actions.js';

export async function runCli(tool: string, body: () => Promise<void>): Promise<void> {
  const debug = process.argv.includes('--debug') || process.env.P2V_DEBUG === '1';
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') {
      void fail(
        new P2vError('IO', 'the reader of standard output went away (broken pipe)', {
          hint: 'check the receiving side (p2v-import or ssh) for its own error',
        }),
      );
    }
  });
  let failed = false;
  const fail = async (e: unknown) => {
    if (failed) return;
    failed = true;
    process.stderr.write(formatError(tool, e, debug) + '\n');
    await runExitActions();
    process.exit(exitCodeFor(e));
  };
  try {
    await body();
    await runExitActions();
  } catch (e) {
    await fail(e);
  }
}
