/**
 * The frame every CLI runs in: parse, run, print a one-line error with its
 * hint, run the exit actions, and exit with the error's status. A closed
 * stdout (EPIPE: the reader went away) is an error, not a crash.
 *
 * `runCommand` is the one way the four tools (p2v-export, p2v-import,
 * p2v-ramboot, p2v-ganeti-os) meet commander: --help and --version exit 0;
 * a usage error prints `tool: message` and `tool: hint: see tool --help` and
 * exits 2; a P2vError prints its message and hint and exits with
 * exitCodeFor's status; anything else is `tool: internal error: …`, exit 1.
 *
 * Also the command-line rules all four tools share: root where it is needed
 * (said first, in its own words), help text wrapped for an 80-column
 * terminal, and no option silently eating the next option as its value.
 */
import { CommanderError, type Command } from 'commander';
import { exitCodeFor, formatError, P2vError } from './errors.js';
import { runExitActions } from './exit-actions.js';

async function runCli(tool: string, body: () => Promise<void>): Promise<void> {
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

export interface CliCommand {
  /** The tool's name, the prefix of every message. */
  tool: string;
  /** The commander program, options and subcommands declared; the runner sets its exits and output. */
  program: Command;
  /** The hint when a tool with subcommands is run without one. */
  noCommandHint?: string;
  /** Refuse `--opt -x` (refuseDashValues); on unless the tool parses its own words another way. */
  refuseDashValues?: boolean;
}

/** A commander exit (help, version or a usage error), with the command it came from. */
class CommanderExit extends Error {
  constructor(
    readonly error: CommanderError,
    readonly commandPath: string,
  ) {
    super(error.message);
  }
}

/** Help width, exits and error output of a command and its subcommands, the same for every tool. */
function configureCommand(cmd: Command, path: string): void {
  cmd.exitOverride((err) => {
    throw new CommanderExit(err, path);
  });
  // The runner prints the error its own way; help asked for by mistake is not printed either.
  cmd.configureOutput({ writeErr: () => undefined, outputError: () => undefined });
  for (const sub of cmd.commands) configureCommand(sub, `${path} ${sub.name()}`);
}

/** The P2vError a commander exit stands for, or undefined for help and version (exit 0). */
function usageErrorOf(e: CommanderExit, c: CliCommand): P2vError | undefined {
  if (e.error.exitCode === 0) return undefined;
  if (e.error.code === 'commander.help')
    return new P2vError('USAGE', 'no command given', { hint: c.noCommandHint ?? `see ${c.tool} --help` });
  // Commander's message is "error: …", with a suggestion on a line of its own.
  const [first, ...more] = e.error.message.replace(/^error: /, '').split('\n');
  const suggestion = more.join(' ').trim();
  return new P2vError('USAGE', suggestion ? `${first} ${suggestion}` : first!, {
    hint: `see ${e.commandPath} --help`,
  });
}

/**
 * Parse `argv` (process.argv) with commander and run: the program's own
 * actions (subcommands), then `body` once the options are parsed. Help and
 * version end the run there, with status 0.
 */
export async function runCommand(
  c: CliCommand,
  argv: readonly string[],
  body?: (program: Command) => Promise<void>,
): Promise<void> {
  await runCli(c.tool, async () => {
    const { program } = c;
    // Help is named after the program itself: a mode with a command of its own ("p2v-import --setup-stager").
    configureCommand(program, program.name() || c.tool);
    helpAt80(program);
    const words = argv.slice(2);
    if (program.commands.length > 0 && words.length === 0)
      throw new P2vError('USAGE', 'no command given', { hint: c.noCommandHint ?? `see ${c.tool} --help` });
    if (c.refuseDashValues !== false) refuseDashValues(program, words);
    try {
      await program.parseAsync([...argv]);
    } catch (e) {
      if (!(e instanceof CommanderExit)) throw e;
      const usage = usageErrorOf(e, c);
      if (usage) throw usage;
      return;
    }
    await body?.(program);
  });
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
