/**
 * The frame every CLI runs in: parse, run, print a one-line error with its
 * hint, run the exit actions, and exit with the error's status. A closed
 * stdout (EPIPE: the reader went away) is an error, not a crash.
 *
 * Also the command-line rules all four tools share: root where it is needed
 * (said first, in its own words), help text wrapped for an 80-column
 * terminal, and no option silently eating the next option as its value.
 */
import type { Command } from 'commander';
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

/** Refuse to go on unless running as root; `why` says what needs it. */
export function requireRoot(why: string): void {
  const uid = process.geteuid?.();
  if (uid !== undefined && uid !== 0)
    throw new P2vError('USAGE', `must run as root: ${why} (running as uid ${uid})`, {
      hint: 'run it as root on the live system (sudo -i, or su -)',
    });
}

/** Help wrapped for an 80-column terminal, whatever the terminal says, on the command and its subcommands. */
export function helpAt80(cmd: Command): Command {
  cmd.configureHelp({ ...cmd.configureHelp(), helpWidth: 80 });
  for (const sub of cmd.commands) helpAt80(sub);
  return cmd;
}

/**
 * Refuse `--opt -x` for an option that takes a value: commander would take
 * "-x" (often the next option, as in `--hostname --ovf`) as the value.
 * `--opt=-x` stays possible for a value that really starts with a dash; a
 * lone "-" (standard output) is a value. `args` are the words after the
 * program name; subcommand names switch to that subcommand's options.
 */
export function refuseDashValues(program: Command, args: readonly string[]): void {
  let cmd = program;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return;
    if (!a.startsWith('-')) {
      const sub = cmd.commands.find((c) => c.name() === a || c.aliases().includes(a));
      if (sub) cmd = sub;
      continue;
    }
    if (a === '-' || (a.startsWith('--') && a.includes('='))) continue;
    const opt = cmd.options.find((o) => o.long === a || o.short === a);
    if (!opt?.required) continue;
    const v = args[i + 1];
    if (v !== undefined && v.length > 1 && v.startsWith('-')) {
      const spelled = opt.long ? `${opt.long}=${v}` : `${a}${v}`;
      throw new P2vError('USAGE', `${a} needs a value, but the next word is ${JSON.stringify(v)}`, {
        hint: `if the value really starts with "-", write ${spelled}`,
      });
    }
    i++;
  }
}
