/**
 * Copying one mounted XFS into another: `xfsdump -l 0 - FROM | xfsrestore - TO`.
 *
 * Why xfsdump and not rsync -aHAXS: it is XFS's own backup format, so it keeps
 * what XFS has and a generic copy loses: every extended attribute namespace
 * as XFS stores it (user, trusted, security, and POSIX ACLs), the inode flags
 * (immutable, append-only, nodump, noatime, sync, extent size hints) and
 * project IDs, holes in sparse files (it dumps extent maps, not byte streams),
 * hard links, device nodes, fifos, sockets, owners, modes and times. The dump
 * is a stream: it never lands in a file (bounded memory and no temporary copy
 * of the guest on the source side).
 *
 * What xfsdump cannot carry is the nanoseconds of the times: xfsrestore sets
 * them in whole seconds. A second pass, `rsync -aHAX --size-only`, walks both
 * trees and moves no data (every size already matches) but sets each path's
 * times (mtime, and atime with -U) to the nanosecond (--modify-window=-1:
 * compare nanoseconds, not whole seconds); where everything else
 * already matches it changes nothing. (Immutable and append-only files keep
 * whole seconds: their times cannot be set once xfsrestore has set the flag.) rsync alone is not the copy: it cannot
 * keep a file's extents (-S makes holes of every zero run, which breaks a
 * swap file; without -S every sparse file is written out in full), nor inode
 * flags and project IDs.
 *
 * -J keeps both from writing the dump inventory under /var/lib/xfsdump on the
 * host (this is a one-off copy, not a backup); -F keeps them from prompting.
 *
 *   copyXfsTree(from, to): Promise<void>
 */
import { P2vError } from '../../lib/errors.js';
import { quoteArgv, run, startProgram } from '../../lib/run.js';
import { needFsProgram } from './fs-common.js';

const tail = (s: unknown, n = 6) =>
  String(s ?? '')
    .trimEnd()
    .split('\n')
    .slice(-n)
    .join('\n');

export async function copyXfsTree(from: string, to: string): Promise<void> {
  await needFsProgram('xfsdump', 'xfsrestore', 'rsync');
  const dumpArgs = ['-J', '-F', '-l', '0', '-L', 'p2v-fit', '-M', 'p2v-fit', '-', from];
  const restoreArgs = ['-J', '-F', '-', to];
  const { child: dump } = await startProgram('xfsdump', dumpArgs, {
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    // The dump flows into xfsrestore, never into our memory.
    buffer: { stdout: false, stderr: true },
    reject: false,
  });
  const { child: restore } = await startProgram('xfsrestore', restoreArgs, {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: true,
    reject: false,
  });
  dump.stdout.pipe(restore.stdin);
  // If xfsrestore dies, xfsdump gets EPIPE and stops: no need to kill either side.
  restore.stdin.on('error', () => undefined);
  const [d, r] = await Promise.all([dump, restore]);
  if (d.exitCode === 0 && r.exitCode === 0) return fixTimes(from, to);
  // Either side's end breaks the other (EPIPE, a truncated stream): say who failed and show both.
  const failed = [
    d.exitCode !== 0 && `xfsdump exit status ${d.exitCode}`,
    r.exitCode !== 0 && `xfsrestore exit status ${r.exitCode}`,
  ];
  throw new P2vError(
    'COMMAND_FAILED',
    `copying the files from ${from} to ${to} failed (${failed.filter(Boolean).join(', ')})`,
    {
      command: `${quoteArgv(['xfsdump', ...dumpArgs])} | ${quoteArgv(['xfsrestore', ...restoreArgs])}`,
      stderrTail: [tail(d.stderr, 3), tail(`${String(r.stdout ?? '')}\n${String(r.stderr ?? '')}`, 3)]
        .filter(Boolean)
        .join('\n'),
      hint: 'export without --target-size, or with one that leaves this XFS its size',
    },
  );
}

/**
 * The nanoseconds xfsrestore drops: an rsync pass that sets times (and moves
 * no data). The times of an immutable or append-only file cannot be set
 * (EPERM, also for root) and xfsrestore has already set those flags: such a
 * file keeps whole-second times, and that is the only failure accepted.
 */
async function fixTimes(from: string, to: string): Promise<void> {
  const args = ['-aHAXU', '--numeric-ids', '--size-only', '--modify-window=-1', `${from}/`, `${to}/`];
  const r = await run('rsync', args, { allowFailure: true, what: `setting the exact file times on ${to}` });
  if (r.exitCode === 0) return;
  const complaints = String(r.stderr ?? '')
    .split('\n')
    .filter((l) => l.startsWith('rsync'));
  const onlyFlagged = complaints.every(
    (l) =>
      /failed to set times on .*: Operation not permitted \(1\)$/.test(l) ||
      l.startsWith('rsync error: some files/attrs were not transferred'),
  );
  if (r.exitCode === 23 && onlyFlagged) return;
  throw new P2vError(
    'COMMAND_FAILED',
    `setting the exact file times on ${to}: rsync failed (exit status ${r.exitCode})`,
    {
      command: quoteArgv(['rsync', ...args]),
      stderrTail: tail(r.stderr),
      hint: 'export without --target-size, or with one that leaves this XFS its size',
    },
  );
}
