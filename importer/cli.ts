/**
 * p2v-import [options] [FILE|-]: receive an OVA (stdin by default) on a
 * staging host and write the requested outputs. Safe as an SSH forced
 * command: see forced-command.ts for what the client may add.
 */
import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { runCli } from '../lib/cli.js';
import { P2vError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/log.js';
import { run } from '../lib/run.js';
import { checkGanetiDefaults } from './config-ini.js';
import { parseClientCommand } from './forced-command.js';
import { importOva } from './import.js';
import { checkInstanceName } from './instance-name.js';
import { parseSize } from './size.js';
import type { OutputSpec } from './types.js';

export const DEFAULT_STAGING = '/var/lib/p2v-import';
export const DEFAULT_OS = 'p2v-image+default';

interface CliOptions {
  staging: string;
  ganetiExport?: string[];
  ova?: string[];
  raw?: string[];
  qcow2?: string[];
  device?: string;
  powerOff?: boolean;
  name?: string;
  os: string;
  hypervisor: string;
  nicMode: string;
  nicLink: string;
  diskSize?: string;
  requireManifest?: boolean;
  keepPartial?: boolean;
  keepStaged?: boolean;
  progress: 'auto' | 'tty' | 'json' | 'none';
  verbose?: boolean;
  quiet?: boolean;
  debug?: boolean;
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

export function buildCommand(): Command {
  return new Command('p2v-import')
    .description('Receive an OVA (from p2v-export, over SSH) and write a Ganeti export, OVA, raw or qcow2 disks')
    .argument('[file]', 'OVA file to read, or - for standard input', '-')
    .option('--staging <dir>', 'work directory (each import in <dir>/<id>.partial, then <dir>/<id>)', DEFAULT_STAGING)
    .option('--ganeti-export <dir>', 'write <dir>/<instance>/config.ini and disk dumps for gnt-backup import', collect)
    .option('--ova <file>', 'write a standard OVA file (streamOptimized VMDK disks)', collect)
    .option('--raw <dir>', 'write <dir>/<instance>-diskN.raw (sparse)', collect)
    .option('--qcow2 <dir>', 'write <dir>/<instance>-diskN.qcow2', collect)
    .option('--device <dev>', 'write disk 0 onto this block device (RAM-booted target)')
    .option('--power-off', 'with --device: power this machine off once the disk is written and synced (direct path)')
    .option('--name <name>', 'instance name (default: from the descriptor, made Ganeti-safe)')
    .option('--os <os+variant>', 'Ganeti OS when the descriptor names none', DEFAULT_OS)
    .option('--hypervisor <hv>', 'Ganeti hypervisor when the descriptor names none', 'kvm')
    .option('--nic-mode <mode>', 'Ganeti NIC mode when the descriptor names none', 'bridged')
    .option('--nic-link <link>', 'Ganeti NIC link when the descriptor names none', 'gntbr0')
    .option('--disk-size <max>', 'refuse any disk larger than this (e.g. 100G)')
    .option('--require-manifest', 'refuse an OVA without a manifest')
    .option('--keep-partial', 'keep <staging>/<id>.partial after a failure (debugging)')
    .option('--keep-staged', 'keep <staging>/<id> after writing the outputs')
    .addOption(
      new Option('--progress <mode>', 'progress display on stderr')
        .choices(['auto', 'tty', 'json', 'none'])
        .default('auto'),
    )
    .option('-v, --verbose', 'more messages')
    .option('-q, --quiet', 'errors only')
    .addOption(new Option('--debug', 'stack traces on errors').hideHelp())
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: () => undefined })
    .allowExcessArguments(false);
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

export async function main(argv: string[]): Promise<void> {
  await runCli('p2v-import', async () => {
    const cmd = buildCommand();
    try {
      cmd.parse(argv);
    } catch (e) {
      const err = e as { code?: string; exitCode?: number; message?: string };
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return;
      throw new P2vError('USAGE', (err.message ?? String(e)).replace(/^error: /, ''), {
        hint: 'see p2v-import --help',
      });
    }
    const o = cmd.opts<CliOptions>();
    if (o.powerOff && !o.device)
      throw new P2vError('USAGE', '--power-off goes with --device', {
        hint: 'it is for the RAM-booted target of the direct path',
      });
    const file = cmd.args[0] ?? '-';
    const client =
      process.env.SSH_ORIGINAL_COMMAND !== undefined ? parseClientCommand(process.env.SSH_ORIGINAL_COMMAND) : {};
    const logger = createLogger({
      tool: 'p2v-import',
      verbose: client.verbose ?? o.verbose,
      quiet: client.quiet ?? o.quiet,
    });

    const outputs: OutputSpec[] = [
      ...(o.ganetiExport ?? []).map((dir): OutputSpec => ({ kind: 'ganeti-export', dir: resolve(dir) })),
      ...(o.ova ?? []).map((f): OutputSpec => ({ kind: 'ova', file: resolve(f) })),
      ...(o.raw ?? []).map((dir): OutputSpec => ({ kind: 'raw', dir: resolve(dir) })),
      ...(o.qcow2 ?? []).map((dir): OutputSpec => ({ kind: 'qcow2', dir: resolve(dir) })),
      ...(o.device ? [{ kind: 'device', path: o.device } as OutputSpec] : []),
    ];
    checkGanetiDefaults({ os: o.os, hypervisor: o.hypervisor, nic: { mode: o.nicMode, link: o.nicLink } });
    const name = client.name ?? (o.name !== undefined ? checkInstanceName(o.name) : undefined);
    const input = file === '-' ? process.stdin : await openInput(file);
    const result = await importOva({
      staging: o.staging,
      input,
      name,
      maxDiskSize: o.diskSize !== undefined ? parseSize(o.diskSize, '--disk-size') : undefined,
      requireManifest: o.requireManifest,
      keepPartial: o.keepPartial,
      keepStaged: o.keepStaged,
      outputs,
      os: o.os,
      hypervisor: o.hypervisor,
      nic: { mode: o.nicMode, link: o.nicLink },
      logger,
      progress: o.progress === 'auto' ? (process.stderr.isTTY ? 'tty' : 'none') : o.progress,
    });
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
