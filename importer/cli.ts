/**
 * p2v-import [options] [FILE|-]: receive an OVA (stdin by default) on a
 * staging host and write the requested outputs; or, on the staging host
 * itself, look after the staging directory (--list, --remove, --from-staged).
 * Safe as an SSH forced command: see forced-command.ts for what the client
 * may add to the admin's command line.
 */
import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { Command, InvalidArgumentError } from 'commander';
import { runCommand } from '../lib/cli.js';
import { onExit } from '../lib/exit-actions.js';
import { P2vError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/log.js';
import { closeProgressOut, openProgressFd, PhaseReporter } from '../lib/progress.js';
import { run } from '../lib/run.js';
import { toolVersion } from '../lib/version.js';
import { checkGanetiDefaults, checkUefiKvmExtra } from './config-ini.js';
import { parseClientCommand, type ClientRequest } from './forced-command.js';
import { formatStagedList, listStaged, removeStaged } from './housekeeping.js';
import { formatBaseList, isImportId, writeBlockMapOut } from './base-cli.js';
import { basesRoot, hasBase, listBases, removeBase, takenBy } from './base.js';
import { DEFAULT_IDLE_TIMEOUT_MS, parseDuration } from './idle-timeout.js';
import { checkInstanceName } from '../lib/instance-name.js';
import { parseSize } from './size.js';
import type { ImportResult, OutputSpec } from './types.js';

export const DEFAULT_STAGING = '/var/lib/p2v-import';
export const DEFAULT_OS = 'p2v-image+default';
const DEFAULT_HYPERVISOR = 'kvm';
const DEFAULT_NIC_MODE = 'bridged';
const DEFAULT_NIC_LINK = 'gntbr0';

type ProgressMode = 'auto' | 'tty' | 'json' | 'none';

/**
 * Defaults are applied in main(), not by commander: an option commander
 * reports as set ("cli") is then always one the forced command's own words
 * set, which is what pins it against the client (forced-command.ts), and
 * --help shows no `(default: …)` noise.
 */
interface CliOptions {
  staging?: string;
  ganetiExport?: string[];
  ova?: string[];
  raw?: string[];
  qcow2?: string[];
  device?: string;
  powerOff?: boolean;
  name?: string;
  os?: string;
  hypervisor?: string;
  uefiKvmExtra?: string;
  nicMode?: string;
  nicLink?: string;
  diskSize?: string;
  requireManifest?: boolean;
  maxStaging?: string;
  idleTimeout?: string;
  keepPartial?: boolean;
  keepStaged?: boolean;
  list?: boolean;
  remove?: string;
  keepBase?: boolean;
  blockMap?: string;
  fromStaged?: string;
  progress?: ProgressMode;
  progressFd?: string;
  verbose?: boolean;
  quiet?: boolean;
  debug?: boolean;
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

const PROGRESS_MODES: ProgressMode[] = ['auto', 'tty', 'json', 'none'];

/** Checked by hand rather than with commander's choices(), whose list would not fit the help's line. */
function progressMode(v: string): ProgressMode {
  if (!PROGRESS_MODES.includes(v as ProgressMode))
    throw new InvalidArgumentError(`use one of ${PROGRESS_MODES.join(', ')}`);
  return v as ProgressMode;
}

export function buildCommand(): Command {
  const cmd = new Command('p2v-import')
    .description(
      'Receive an OVA (from p2v-export, usually over SSH) and write a Ganeti\n' +
        'export, an OVA, raw or qcow2 disks. Runs as an SSH forced command.',
    )
    .usage('[options] [file]')
    .argument('[file]', 'OVA file to read; - or nothing: standard input')
    .version(`p2v-import ${toolVersion()}`, '--version', 'print the version and exit')
    .helpOption('-h, --help', 'show this help and exit')
    .configureHelp({ showGlobalOptions: false });

  cmd.optionsGroup('Outputs (any number; written once the import is verified):');
  cmd
    .option('--ganeti-export <dir>', 'write <dir>/<instance>/ for gnt-backup import', collect)
    .option('--ova <file>', 'write a standard OVA (streamOptimized VMDK disks)', collect)
    .option('--raw <dir>', 'write <dir>/<instance>-diskN.raw, sparse', collect)
    .option('--qcow2 <dir>', 'write <dir>/<instance>-diskN.qcow2', collect)
    .option('--device <dev>', 'write disk 0 onto this block device')
    .option('--power-off', 'with --device: power off once written (direct path)');

  cmd.optionsGroup('The instance:');
  cmd
    .option('--name <name>', 'instance name (else the descriptor’s, made valid)')
    .option('--os <os+variant>', `Ganeti OS when none is named (${DEFAULT_OS})`)
    .option('--hypervisor <hv>', `Ganeti hypervisor when none is named (${DEFAULT_HYPERVISOR})`)
    .option('--uefi-kvm-extra <args>', 'kvm_extra of UEFI machines (OVMF)')
    .option('--nic-mode <mode>', `Ganeti NIC mode when none is named (${DEFAULT_NIC_MODE})`)
    .option('--nic-link <link>', `Ganeti NIC link when none is named (${DEFAULT_NIC_LINK})`);

  cmd.optionsGroup('Staging and limits:');
  cmd
    .option('--staging <dir>', `work directory (${DEFAULT_STAGING})`)
    .option('--disk-size <max>', 'refuse any disk larger than this, e.g. 200G')
    .option('--require-manifest', 'refuse an OVA without a manifest')
    .option('--max-staging <size>', 'refuse an import that would fill staging past this')
    .option('--idle-timeout <time>', 'give up after this long without input (10m)')
    .option('--keep-partial', 'keep <staging>/<id>.partial after a failure')
    .option('--keep-staged', 'keep <staging>/<id> after writing the outputs')
    .option('--keep-base', "keep each machine's last import as its base (deltas)");

  cmd.optionsGroup('Housekeeping (on the staging host, never through the key):');
  cmd
    .option('--list', 'list the imports in the staging directory')
    .option('--remove <id>', 'remove a staged copy, a dead partial import or a base')
    .option('--block-map <name>', "write the block map of <name>'s base to stdout")
    .option('--from-staged <id>', 'write the outputs from a kept staged copy')
    .option('--setup-stager', 'as root: set this host up as a stager (see its --help)');

  cmd.optionsGroup('Messages:');
  cmd
    .option('--progress <mode>', 'progress on stderr: auto, tty, json or none', progressMode)
    .option('--progress-fd <n>', 'JSON progress lines on descriptor n (1, or 3 and up)')
    .option('-v, --verbose', 'more messages')
    .option('-q, --quiet', 'errors only')
    .option('--debug', 'stack traces on errors (or P2V_DEBUG=1)');

  return cmd.allowExcessArguments(false);
}

/** Read size for an OVA given as a file. */
const INPUT_READ_BYTES = 1024 * 1024;

async function openInput(file: string): Promise<NodeJS.ReadableStream> {
  try {
    const fh = await open(file, 'r');
    if (!(await fh.stat()).isFile()) {
      await fh.close();
      throw new Error('not a regular file');
    }
    // 1 MiB reads: with Node's default 64 KiB, the VMDK reader spends more on
    // grains that straddle two chunks (a copy each) than on inflating them
    // (bench/README.md: about 1.5× the decode time on the 2 GiB bench).
    return fh.createReadStream({ highWaterMark: INPUT_READ_BYTES });
  } catch (e) {
    throw new P2vError('USAGE', `cannot read ${file}: ${(e as Error).message}`, {
      hint: 'give an OVA file, or - for standard input',
      cause: e,
    });
  }
}

/**
 * Where --progress-fd N writes. An import prints nothing on its standard
 * output, so 1 is a descriptor of JSON lines' own here (the only one a client
 * behind the forced command has apart from stderr); any other goes through
 * lib/progress's openProgressFd, which refuses 0 and 2 (the OVA, the log).
 */
function progressStream(text: string): Writable {
  const fd = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(fd)) {
    throw new P2vError('USAGE', `invalid --progress-fd "${text}"`, {
      hint: 'give an open file descriptor: 1 (standard output) or 3 and above, e.g. --progress-fd 3 3>progress.jsonl',
    });
  }
  if (fd === 1) return process.stdout;
  const out = openProgressFd(fd);
  // Registered before any work: it runs last, after the final phase events, also when the run fails.
  onExit(`close --progress-fd ${fd}`, () => closeProgressOut(out));
  return out;
}

function usage(message: string, hint = 'see p2v-import --help'): P2vError {
  return new P2vError('USAGE', message, { hint });
}

/** The one thing this run does, from the mode options; combinations that make no sense are refused. */
function chooseMode(
  o: CliOptions,
  file: string | undefined,
  outputs: OutputSpec[],
): 'import' | 'list' | 'remove' | 'from-staged' | 'block-map' {
  const modes = (['list', 'remove', 'fromStaged', 'blockMap'] as const).filter((k) => o[k] !== undefined);
  const flag = { list: '--list', remove: '--remove', fromStaged: '--from-staged', blockMap: '--block-map' };
  if (modes.length > 1) throw usage(`${flag[modes[0]!]} and ${flag[modes[1]!]} cannot be combined`);
  const mode = modes[0];
  if (mode === undefined) return 'import';
  if (file !== undefined) throw usage(`${flag[mode]} reads no OVA; refused "${file}"`);
  if (mode === 'fromStaged') return 'from-staged';
  if (mode === 'blockMap') return 'block-map';
  if (outputs.length > 0) throw usage(`${flag[mode]} writes no outputs`);
  return mode;
}

export async function main(argv: string[]): Promise<void> {
  // The import itself and the stager setup load on use: `--block-map` (each delta's first step) and `--list`
  // start in about half the time without them (bench/README.md, delta).
  if (argv.slice(2).includes('--setup-stager')) return (await import('./stager-setup.js')).setupStagerMain(argv);
  // Words that look like options are left to commander: the forced command's client words are checked apart.
  const command = { tool: 'p2v-import', program: buildCommand(), refuseDashValues: false };
  await runCommand(command, argv, async (cmd) => {
    const o = cmd.opts<CliOptions>();
    // The forced command's own words (argv) are the admin's; the client's are only what sshd passes on.
    const pinned = (attribute: string) => cmd.getOptionValueSource(attribute) === 'cli';
    const client: ClientRequest =
      process.env.SSH_ORIGINAL_COMMAND !== undefined
        ? parseClientCommand(
            process.env.SSH_ORIGINAL_COMMAND,
            pinned,
            pinned('name') && o.name !== undefined ? checkInstanceName(o.name) : undefined,
          )
        : {};
    if (client.version) {
      process.stdout.write(`p2v-import ${toolVersion()}\n`);
      return;
    }
    if (o.powerOff && !o.device)
      throw new P2vError('USAGE', '--power-off goes with --device', {
        hint: 'it is for the RAM-booted target of the direct path',
      });
    const file = cmd.args[0];
    const logger = createLogger({
      tool: 'p2v-import',
      verbose: o.verbose || client.verbose,
      quiet: o.quiet || client.quiet,
    });
    const staging = o.staging ?? DEFAULT_STAGING;

    const outputs: OutputSpec[] = [
      ...(o.ganetiExport ?? []).map((dir): OutputSpec => ({ kind: 'ganeti-export', dir: resolve(dir) })),
      ...(o.ova ?? []).map((f): OutputSpec => ({ kind: 'ova', file: resolve(f) })),
      ...(o.raw ?? []).map((dir): OutputSpec => ({ kind: 'raw', dir: resolve(dir) })),
      ...(o.qcow2 ?? []).map((dir): OutputSpec => ({ kind: 'qcow2', dir: resolve(dir) })),
      ...(o.device ? [{ kind: 'device', path: o.device } as OutputSpec] : []),
    ];
    const mode = client.blockMap !== undefined ? 'block-map' : chooseMode(o, file, outputs);
    if (mode === 'list') {
      process.stdout.write(formatStagedList(await listStaged(staging)) + '\n');
      const bases = await listBases(staging);
      if (bases.length > 0) process.stdout.write('\n' + formatBaseList(bases) + '\n');
      return;
    }
    if (mode === 'remove') {
      // A base's name, when there is such a base; anything else is an import id (removeStaged words the refusal).
      const removed =
        !isImportId(o.remove!) && (await hasBase(staging, o.remove!))
          ? await removeBase(staging, o.remove!)
          : await removeStaged(staging, o.remove!);
      logger.info(`removed ${removed}`);
      return;
    }
    if (mode === 'block-map') {
      const name = client.blockMap ?? checkInstanceName(o.blockMap!);
      // A base left taken by an import stopped after its commit becomes that import's result first (loaded
      // only then: the recovery brings in the import's own modules).
      if ((await takenBy(join(basesRoot(staging), name))) !== undefined) {
        const { recoverReleasedBase } = await import('./base-take.js');
        await recoverReleasedBase(staging, name, logger);
      }
      await writeBlockMapOut(staging, name);
      return;
    }

    const ganeti = {
      os: o.os ?? DEFAULT_OS,
      hypervisor: o.hypervisor ?? DEFAULT_HYPERVISOR,
      nic: { mode: o.nicMode ?? DEFAULT_NIC_MODE, link: o.nicLink ?? DEFAULT_NIC_LINK },
      ...(o.uefiKvmExtra !== undefined ? { uefiKvmExtra: checkUefiKvmExtra(o.uefiKvmExtra) } : {}),
    };
    checkGanetiDefaults(ganeti);
    const name = client.name ?? (o.name !== undefined ? checkInstanceName(o.name) : undefined);
    const fdText = client.progressFd !== undefined ? String(client.progressFd) : o.progressFd;
    const progressOut = fdText !== undefined ? progressStream(fdText) : undefined;
    const display = o.progress ?? 'auto';
    const progress = display === 'auto' ? (process.stderr.isTTY ? 'tty' : 'none') : display;
    // As p2v-export does: the display on stderr, and the JSON lines on --progress-fd alongside it.
    const phases = new PhaseReporter({
      mode: progress === 'json' && progressOut ? 'json' : progress,
      out: progress === 'json' ? progressOut : undefined,
      jsonOut: progress === 'json' ? undefined : progressOut,
    });
    const maxStaging = o.maxStaging !== undefined ? parseSize(o.maxStaging, '--max-staging') : undefined;
    const idleTimeoutMs =
      o.idleTimeout !== undefined ? parseDuration(o.idleTimeout, '--idle-timeout') : DEFAULT_IDLE_TIMEOUT_MS;
    const maxDiskSize = o.diskSize !== undefined ? parseSize(o.diskSize, '--disk-size') : undefined;

    let result: ImportResult;
    if (mode === 'from-staged') {
      const { importFromStaged } = await import('./from-staged.js');
      result = await importFromStaged({
        staging,
        id: o.fromStaged!,
        outputs,
        name,
        ...ganeti,
        keepStaged: o.keepStaged,
        logger,
        phases,
      });
    } else {
      const input = file === undefined || file === '-' ? process.stdin : await openInput(file);
      const { importOva } = await import('./import.js');
      result = await importOva({
        staging,
        input,
        name,
        maxDiskSize,
        requireManifest: o.requireManifest,
        keepPartial: o.keepPartial,
        keepStaged: o.keepStaged,
        maxStaging,
        idleTimeoutMs,
        keepBase: o.keepBase,
        outputs,
        ...ganeti,
        logger,
        progress,
        phases,
      });
    }
    for (const w of result.written) logger.info(`output: ${w}`);
    if (o.powerOff) await schedulePowerOff(logger);
  });
}

/**
 * Power off a moment after we exit, so the sender sees our exit status over
 * SSH before the connection drops; Ganeti then starts the instance from its
 * own, newly written disk.
 */
async function schedulePowerOff(logger: Logger): Promise<void> {
  await run('sync', []);
  logger.info('disk written and synced; powering off in 3 seconds');
  const child = spawn('sh', ['-c', 'sleep 3; poweroff || systemctl poweroff || busybox poweroff'], {
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
}
