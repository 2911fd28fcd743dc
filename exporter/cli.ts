/**
 * p2v-export: the source-side command line. Options are checked before any
 * resource is opened, so a typo never leaves an overlay running.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { writeFile } from 'node:fs/promises';
import { runCli } from '../lib/cli.js';
import { P2vError } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { parseSize } from '../lib/units.js';
import { runExport, type ExportOutput } from './export.js';
import { formatReport } from './report.js';
import { parseSshTarget } from './ssh-transport.js';
import type { HypervisorProfile } from '../fixups/types.js';

const collect = (v: string, prev: string[]) => [...prev, v];

function intIn(min: number, max: number) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

export function buildProgram(): Command {
  return new Command('p2v-export')
    .description(
      'Export a physical Linux machine as an OVF/OVA stream for Ganeti.\n' +
        'Puts an nbdkit copy-on-write overlay over every source disk (the source is never written),\n' +
        'inspects and fixes the guest up for its hypervisor, trims free space, and streams\n' +
        'streamOptimized VMDK disks in an OVA with a SHA256 manifest.\n\n' +
        'Examples:\n' +
        '  p2v-export --disk /dev/sda --hypervisor kvm --ovf | ssh stager p2v-import\n' +
        '  p2v-export --disk /dev/sda --ssh p2v@stager --host-key SHA256:…\n' +
        '  p2v-export --disk /dev/sda -o machine.ova\n' +
        '  p2v-export --disk /dev/sda --inspect --json',
    )
    .requiredOption(
      '-d, --disk <path>',
      'source disk (block device or image file); repeat for more disks, boot disk first',
      collect,
      [],
    )
    .option('--ovf', 'stream the OVA to standard output (chunked)')
    .option('-o, --output <file>', 'write a standard single-file OVA to FILE ("-" = standard output, chunked)')
    .option('--ssh <user@host[:port]>', 'run the receiver on the stager over SSH and stream to it')
    .option('--key <file>', 'SSH private key (default: ssh-agent, then ~/.ssh/id_*)')
    .option('--host-key <fingerprint>', 'pinned stager host key, SHA256:… (default: known_hosts)')
    .option('--known-hosts <file>', 'known_hosts file to check the stager key against', collect, [])
    .option('--remote-command <cmd>', 'receiver command run on the stager (or the target, with --direct)')
    .option(
      '--direct <user@target[:port]>',
      "direct path: stream disk 0 onto the RAM-booted target instance's own disk, which then powers off",
    )
    .option('--target-device <dev>', "with --direct: the target's disk to overwrite", '/dev/vda')
    .option('--inspect', 'inspect the source disks, print what was found, and stop')
    .option('--json', 'with --inspect: print JSON')
    .option('--dry-run', 'print every planned fixup as a unified diff and stop; nothing is sent')
    .addOption(
      new Option('--hypervisor <profile>', 'target hypervisor profile')
        .choices(['kvm', 'xen-pvm', 'xen-hvm'])
        .default('kvm'),
    )
    .option('--hostname <name>', 'new hostname for the moved machine')
    .option('--ip <address/prefix>', 'static IPv4/IPv6 address of the primary interface')
    .option('--gateway <address>', 'default gateway')
    .option('--dns <address>', 'DNS server (repeatable)', collect, [])
    .option('--dhcp', 'configure the primary interface for DHCP')
    .option('--hooks <dir>', 'run the executables in DIR (name order) on the mounted guest before sending')
    .option('--no-fixups', 'copy the disks as they are (still overlay-protected and sparsified)')
    .option('--name <name>', 'instance name (default: the new or current hostname)')
    .option('--cpus <n>', 'vCPUs (default: those of this machine)', intIn(1, 1024))
    .option('--memory <size>', 'memory, e.g. 4G (default: that of this machine)')
    .option('--compress-level <n>', 'zlib level of the VMDK grains, 0-9', intIn(0, 9))
    .option('--chunk-size <size>', 'OVA chunk size when streaming (default 64M)')
    .addOption(
      new Option('--progress <mode>', 'progress display').choices(['auto', 'tty', 'json', 'none']).default('auto'),
    )
    .option('--report <file>', 'write the export report as JSON to FILE')
    .option('-v, --verbose', 'more log lines')
    .option('-q, --quiet', 'only warnings and errors')
    .option('--debug', 'stack traces on errors')
    .showHelpAfterError('(run p2v-export --help for usage)');
}

interface CliOpts {
  disk: string[];
  ovf?: boolean;
  output?: string;
  ssh?: string;
  key?: string;
  hostKey?: string;
  knownHosts: string[];
  remoteCommand?: string;
  direct?: string;
  targetDevice: string;
  inspect?: boolean;
  json?: boolean;
  dryRun?: boolean;
  hypervisor: HypervisorProfile;
  hostname?: string;
  ip?: string;
  gateway?: string;
  dns: string[];
  dhcp?: boolean;
  hooks?: string;
  fixups: boolean;
  name?: string;
  cpus?: number;
  memory?: string;
  compressLevel?: number;
  chunkSize?: string;
  progress: 'auto' | 'tty' | 'json' | 'none';
  report?: string;
  verbose?: boolean;
  quiet?: boolean;
}

function chooseOutput(o: CliOpts): ExportOutput | undefined {
  const modes = [o.ovf && '--ovf', o.output && '-o', o.ssh && '--ssh', o.direct && '--direct'].filter(Boolean);
  if (modes.length > 1)
    throw new P2vError('USAGE', `${modes.join(' and ')} cannot be combined`, { hint: 'choose one destination' });
  if (o.inspect || o.dryRun) return undefined;
  if (o.ssh || o.direct) {
    if (o.direct && !/^\/dev\/[\w/-]+$/.test(o.targetDevice))
      throw new P2vError('USAGE', `bad --target-device "${o.targetDevice}"`, {
        hint: 'name the target disk, e.g. /dev/vda',
      });
    // The direct path writes disk 0 over the target's own disk as it arrives, then powers the target off.
    const command =
      o.remoteCommand ??
      (o.direct ? `p2v-import --staging /run/p2v --device ${o.targetDevice} --power-off` : 'p2v-import');
    return {
      kind: 'ssh',
      ssh: {
        target: parseSshTarget((o.ssh ?? o.direct)!),
        keyFile: o.key,
        hostKey: o.hostKey,
        knownHosts: o.knownHosts.length ? o.knownHosts : undefined,
        command,
      },
    };
  }
  if (o.output && o.output !== '-') return { kind: 'file', path: o.output };
  if (!o.ovf && o.output !== '-')
    throw new P2vError('USAGE', 'no destination given', {
      hint: 'use --ovf (stream to stdout), -o FILE.ova, or --ssh USER@STAGER',
    });
  if (process.stdout.isTTY)
    throw new P2vError('USAGE', 'refusing to write an OVA stream to a terminal', {
      hint: 'pipe it: p2v-export --ovf … | ssh stager p2v-import',
    });
  return { kind: 'stdout' };
}

export async function main(argv: string[]): Promise<void> {
  await runCli('p2v-export', async () => {
    const program = buildProgram();
    program.exitOverride((err) => {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') process.exit(0);
      throw new P2vError('USAGE', err.message.replace(/^error: /, ''));
    });
    program.configureOutput({ writeErr: () => undefined });
    program.parse(argv);
    const o = program.opts<CliOpts>();
    if (o.disk.length === 0)
      throw new P2vError('USAGE', 'no source disk given', {
        hint: 'name each disk with --disk /dev/sdX, boot disk first',
      });
    if (o.ip && o.dhcp) throw new P2vError('USAGE', '--ip and --dhcp cannot be combined');
    if (o.json && !o.inspect) throw new P2vError('USAGE', '--json goes with --inspect');
    if (o.direct && o.disk.length > 1)
      throw new P2vError('USAGE', '--direct takes one disk: the target instance has one disk to receive it', {
        hint: 'export the other disks with --ssh to a stager',
      });
    const output = chooseOutput(o);
    const log = createLogger({ tool: 'p2v-export', verbose: o.verbose, quiet: o.quiet });
    const progress = o.progress === 'auto' ? (process.stderr.isTTY ? 'tty' : 'none') : o.progress;
    const report = await runExport({
      disks: o.disk,
      output: output ?? { kind: 'stdout' },
      inspectOnly: o.inspect ? (o.json ? 'json' : 'text') : undefined,
      dryRun: o.dryRun,
      noFixups: !o.fixups,
      fixups: {
        hypervisor: o.hypervisor,
        hostname: o.hostname,
        ip: o.ip,
        gateway: o.gateway,
        dns: o.dns.length ? o.dns : undefined,
        dhcp: o.dhcp,
        hooksDir: o.hooks,
      },
      name: o.name,
      cpus: o.cpus,
      memoryMiB: o.memory ? Math.ceil(parseSize(o.memory, '--memory') / 2 ** 20) : undefined,
      compressLevel: o.compressLevel,
      chunkSize: o.chunkSize ? parseSize(o.chunkSize, '--chunk-size') : undefined,
      progress,
      log,
    });
    if (o.report) await writeFile(o.report, JSON.stringify(report, null, 2) + '\n');
    if (!o.inspect && !o.dryRun && !o.quiet) process.stderr.write(formatReport(report));
  });
}
