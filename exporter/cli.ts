/**
 * p2v-export: the source-side command line. Every option value is checked
 * before any resource is opened (with the validators the fixups use), then
 * root, then the source disks and the output file: a typo never leaves an
 * overlay running, and the first mistakes get their own diagnosis.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { stat } from 'node:fs/promises';
import { requireRoot, runCommand } from '../lib/cli.js';
import { P2vError } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { closeProgressOut, openProgressFd } from '../lib/progress.js';
import { parseSize } from '../lib/units.js';
import { toolVersion } from '../lib/version.js';
import { checkHostname } from '../fixups/hostname.js';
import { ipSettings } from '../fixups/ip-config.js';
import { runExport } from './export.js';
import { chooseOutput, type OutputChoice } from './outputs/index.js';
import { checkReportFile, formatReport, writeReportFile } from './report.js';
import type { HypervisorProfile } from '../fixups/types.js';
import type { TargetSize } from './fit/index.js';
import { parseMapDevice, type DeviceMapping } from '../guest/device-names.js';
import { parseSshTarget } from './ssh-transport.js';
import type { BaseMapChoice } from './delta/index.js';

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

function intIn(min: number, max: number) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

const MiB = 2 ** 20;

export function buildProgram(): Command {
  const program = new Command('p2v-export')
    .description(
      'Export a physical Linux machine as an OVF/OVA stream for Ganeti.\n\n' +
        'Puts an nbdkit copy-on-write overlay over every source disk (the source is ' +
        'never written), inspects the guest and fixes it up for its hypervisor, ' +
        'trims free space, and streams streamOptimized VMDK disks in an OVA with a ' +
        'SHA256 manifest. Runs as root, on the machine booted from a live image.',
    )
    .version(`p2v-export ${toolVersion()}`, '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'print this help and exit')
    .option('-d, --disk <path>', 'source disk (repeat; boot disk first)', collect)
    .option('--ovf', 'stream the OVA to standard output (chunked)')
    .option('-o, --output <file>', 'write a single-file OVA ("-": stdout, chunked)')
    .option('--force', 'replace the -o or --report FILE if it exists')
    .option('--ssh <user@host>', 'stream to p2v-import over SSH (user@host[:port])')
    .option('--key <file>', 'SSH private key (else ssh-agent, ~/.ssh/id_*)')
    .option('--host-key <sha256>', 'stager host key, SHA256:… (else known_hosts)')
    .option('--known-hosts <file>', 'known_hosts file for the host key (repeatable)', collect)
    .option('--remote-command <cmd>', 'receiver command to run on the stager or target')
    .option('--direct <user@host>', "stream disk 0 onto a RAM-booted target's own disk")
    .option('--target-device <dev>', 'with --direct: disk to write (default /dev/vda)')
    .option(
      '--target-size <size>',
      'make the n-th --disk this size (repeat; "auto": the smallest that holds its data): filesystems shrink or grow, the partition table is rewritten',
      collect,
    )
    .option('--inspect', 'print what the source disks hold, and stop')
    .option('--json', 'with --inspect: print JSON')
    .option('--dry-run', 'print the planned fixups as diffs, and stop')
    .option('--hypervisor <profile>', 'kvm (default), xen-pvm or xen-hvm', hypervisorProfile)
    .option('--hostname <name>', 'new host name of the moved machine')
    .option('--ip <addr/prefix>', 'static address of the primary interface')
    .option('--gateway <address>', 'default gateway')
    .option('--dns <address>', 'DNS server (repeatable)', collect)
    .option('--dhcp', 'configure the primary interface for DHCP')
    .option('--hooks <dir>', "run DIR's executables on the guest before sending")
    .addOption(
      new Option(
        '--boot <mode>',
        'how the instance boots: bios, uefi (OVMF on the nodes) or auto (default: as the guest does)',
      ).argParser(bootMode),
    )
    .option('--no-fixups', 'copy the disks as they are (still trimmed)')
    .option(
      '--map-device <guest=index>',
      "the guest's disk GUEST is exported disk INDEX (--disk order, from 0), e.g. /dev/sda=0; repeatable",
      (v: string, prev: DeviceMapping[] | undefined) => [...(prev ?? []), parseMapDevice(v)],
    )
    .option(
      '--lvm-as-is',
      'copy an LVM volume group with snapshot, thin, RAID or cache LVs untouched (no inspection, fixups or trim inside it) instead of refusing',
    )
    .option('--name <name>', 'instance name (default: the host name)')
    .option('--cpus <n>', 'vCPUs (default: those of this machine)', intIn(1, 1024))
    .option('--memory <size>', 'memory, e.g. 4G (default: that of this machine)')
    .option('--compress-level <n>', 'zlib level of the VMDK grains, 0-9 (default 1)', intIn(0, 9))
    .option('--chunk-size <size>', 'OVA chunk size when streaming (default 64M)')
    .option('--base-map <file>', 'send only blocks differing from this base map (a delta)')
    .option('--delta', "with --ssh: fetch the stager's base map and send a delta")
    .option('--warm', 'a pass from the running machine, kept as a base')
    .option(
      '--link-rate <size>',
      'with --inspect and a base map: link bytes/s for the downtime estimate (default 125M)',
    )
    .addOption(
      new Option('--progress <mode>', 'stderr progress line: auto (default), tty or none').argParser(progressMode),
    )
    .option('--progress-fd <n>', 'JSON progress lines to descriptor N', intIn(0, 65535))
    .option('--report <file>', 'write the export report as JSON to FILE')
    .option('-v, --verbose', 'more log lines')
    .option('-q, --quiet', 'only warnings and errors')
    .option('--debug', 'stack traces on errors')
    .addHelpText(
      'after',
      // sdX, not sda: on a live image sda is often the stick it booted from (lsblk tells).
      "\nExamples (find the machine's disk with lsblk first):\n" +
        '  p2v-export --disk /dev/sdX --hypervisor kvm --ovf | ssh p2v@stager p2v-import\n' +
        '  p2v-export --disk /dev/sdX --ssh p2v@stager --host-key SHA256:…\n' +
        '  p2v-export --disk /dev/sdX -o machine.ova\n' +
        '  p2v-export --disk /dev/sdX --inspect\n' +
        '  p2v-export --disk /dev/sdX --target-size 60G --ssh p2v@stager\n',
    );
  return program;
}

function hypervisorProfile(v: string): HypervisorProfile {
  if (v !== 'kvm' && v !== 'xen-pvm' && v !== 'xen-hvm')
    throw new InvalidArgumentError('choose kvm, xen-pvm or xen-hvm');
  return v;
}

function bootMode(v: string): 'bios' | 'uefi' | 'auto' {
  if (v !== 'bios' && v !== 'uefi' && v !== 'auto') throw new InvalidArgumentError('choose bios, uefi or auto');
  return v;
}

function progressMode(v: string): 'auto' | 'tty' | 'none' {
  if (v === 'json') throw new InvalidArgumentError('JSON progress has a descriptor of its own: use --progress-fd N');
  if (v !== 'auto' && v !== 'tty' && v !== 'none') throw new InvalidArgumentError('choose auto, tty or none');
  return v;
}

/** The output options are chooseOutput's (declared once, where the output is chosen); the rest are the run's. */
interface CliOpts extends OutputChoice {
  disk?: string[];
  targetSize?: string[];
  targetDevice: string;
  inspect?: boolean;
  json?: boolean;
  dryRun?: boolean;
  hypervisor: HypervisorProfile;
  hostname?: string;
  ip?: string;
  gateway?: string;
  dns?: string[];
  dhcp?: boolean;
  hooks?: string;
  boot?: 'bios' | 'uefi' | 'auto';
  fixups: boolean;
  mapDevice?: DeviceMapping[];
  lvmAsIs?: boolean;
  name?: string;
  cpus?: number;
  memory?: string;
  compressLevel?: number;
  chunkSize?: string;
  baseMap?: string;
  delta?: boolean;
  warm?: boolean;
  linkRate?: string;
  progress: 'auto' | 'tty' | 'none';
  progressFd?: number;
  verbose?: boolean;
  quiet?: boolean;
}

/** The option values, checked as the fixups and the writers will check them, before anything runs. */
async function checkValues(o: CliOpts): Promise<{
  memoryMiB?: number;
  chunkSize?: number;
  targetSizes?: (TargetSize | undefined)[];
  linkRate?: number;
}> {
  if (!o.disk?.length)
    throw new P2vError('USAGE', 'no source disk given', {
      hint: 'name each disk with --disk /dev/sdX, boot disk first',
    });
  if (o.json && !o.inspect) throw new P2vError('USAGE', '--json goes with --inspect');
  let linkRate: number | undefined;
  if (o.linkRate !== undefined) {
    if (!o.inspect || !(o.baseMap || o.delta))
      throw new P2vError('USAGE', '--link-rate goes with --inspect and --base-map (or --delta)', {
        hint: 'it sets the link speed of the projected downtime of a final pass',
      });
    linkRate = parseSize(o.linkRate, '--link-rate');
    if (linkRate < 1000)
      throw new P2vError('USAGE', `--link-rate ${o.linkRate} is too slow to mean anything`, {
        hint: 'bytes per second, e.g. --link-rate 100M',
      });
  }
  const targetSizes = o.targetSize?.map((v) => targetSize(v));
  if (targetSizes && targetSizes.length > o.disk.length)
    throw new P2vError('USAGE', `${targetSizes.length} --target-size for ${o.disk.length} --disk`, {
      hint: 'the n-th --target-size applies to the n-th --disk: give at most one per disk',
    });
  if (o.direct && o.disk.length > 1)
    throw new P2vError('USAGE', '--direct takes one disk: the target instance has one disk to receive it', {
      hint: 'export the other disks with --ssh to a stager',
    });
  if (o.hostname !== undefined) checkHostname(o.hostname, '--hostname');
  if (o.name !== undefined) checkHostname(o.name, '--name');
  if (o.ip !== undefined || o.gateway !== undefined || o.dns?.length || o.dhcp)
    ipSettings({ hypervisor: o.hypervisor, ip: o.ip, gateway: o.gateway, dns: o.dns, dhcp: o.dhcp });
  let memoryMiB: number | undefined;
  if (o.memory !== undefined) {
    memoryMiB = Math.ceil(parseSize(o.memory, '--memory') / MiB);
    if (memoryMiB < 32 || memoryMiB > 2 ** 24)
      throw new P2vError('USAGE', `--memory ${o.memory} is out of range: give 32M to 16T`, {
        hint: 'sizes are bytes unless a unit follows, e.g. --memory 4G',
      });
  }
  let chunkSize: number | undefined;
  if (o.chunkSize !== undefined) {
    chunkSize = parseSize(o.chunkSize, '--chunk-size');
    // One chunk is held in memory while it is written.
    if (chunkSize < MiB || chunkSize > 1024 * MiB)
      throw new P2vError('USAGE', `--chunk-size ${o.chunkSize} is out of range: give 1M to 1G`, {
        hint: 'sizes are bytes unless a unit follows, e.g. --chunk-size 64M',
      });
  }
  if (o.hooks !== undefined) {
    const st = await stat(o.hooks).catch(() => undefined);
    if (!st?.isDirectory())
      throw new P2vError('USAGE', `--hooks ${o.hooks} is ${st ? 'not a directory' : 'missing'}`, {
        hint: 'name a directory of executable hook scripts',
      });
  }
  return { memoryMiB, chunkSize, targetSizes, linkRate };
}

/** A --target-size value: "auto", or a size in whole sectors (Ganeti's disks are whole MiB). */
function targetSize(v: string): TargetSize {
  if (v === 'auto') return 'auto';
  const n = parseSize(v, '--target-size');
  if (n < MiB || n % 512 !== 0)
    throw new P2vError('USAGE', `--target-size ${v} must be at least 1M and a multiple of 512 bytes`, {
      hint: 'give a size such as 20G or 20480M, or auto',
    });
  return n;
}

/** --base-map FILE, or --delta with --ssh (the map fetched from the stager): docs/design-delta.md. */
function baseMapChoice(o: CliOpts): BaseMapChoice | undefined {
  if (o.warm && (o.dryRun || o.hooks || o.hostname || o.ip || o.dhcp))
    throw new P2vError('USAGE', '--warm changes nothing: it takes no fixup options', {
      hint: 'give the fixup options to the final pass (from the live image, with --base-map or --delta)',
    });
  if (o.delta && o.baseMap)
    throw new P2vError('USAGE', '--delta and --base-map cannot be combined', {
      hint: '--delta fetches the map over --ssh; --base-map reads it from a file',
    });
  if (o.delta && !o.ssh)
    throw new P2vError('USAGE', '--delta goes with --ssh', {
      hint: 'without --ssh, fetch the map with p2v-import --block-map NAME and give it with --base-map FILE',
    });
  if (o.delta)
    return {
      ssh: {
        target: parseSshTarget(o.ssh!),
        keyFile: o.key,
        hostKey: o.hostKey,
        knownHosts: o.knownHosts?.length ? o.knownHosts : undefined,
        command: o.remoteCommand ?? 'p2v-import',
      },
    };
  return o.baseMap;
}

export async function main(argv: string[]): Promise<void> {
  await runCommand({ tool: 'p2v-export', program: buildProgram() }, argv, async (program) => {
    // Defaults set here, not in commander, so --help shows them in plain words.
    const given = program.opts<Partial<CliOpts>>();
    const o: CliOpts = {
      ...given,
      targetDevice: given.targetDevice ?? '/dev/vda',
      hypervisor: given.hypervisor ?? 'kvm',
      progress: given.progress ?? 'auto',
      fixups: given.fixups ?? true,
    };
    const values = await checkValues(o);
    const output = chooseOutput({ ...o, sendsNothing: o.inspect || o.dryRun });
    if (o.progressFd === 1 && output?.kind === 'stdout')
      throw new P2vError('USAGE', '--progress-fd 1 is standard output, which carries the OVA stream');
    requireRoot('p2v-export attaches loop devices, mounts the guest and serves it through FUSE');
    if (o.report) await checkReportFile(o.report, o.force);
    const progressOut = o.progressFd !== undefined ? openProgressFd(o.progressFd) : undefined;
    const log = createLogger({ tool: 'p2v-export', verbose: o.verbose, quiet: o.quiet });
    const progress = o.progress === 'auto' ? (process.stderr.isTTY ? 'tty' : 'none') : o.progress;
    let report;
    try {
      report = await runExport({
        disks: o.disk!,
        targetSizes: values.targetSizes,
        output,
        inspectOnly: o.inspect ? (o.json ? 'json' : 'text') : undefined,
        dryRun: o.dryRun,
        noFixups: !o.fixups,
        mapDevice: o.mapDevice,
        lvmAsIs: o.lvmAsIs,
        fixups: {
          hypervisor: o.hypervisor,
          hostname: o.hostname,
          ip: o.ip,
          gateway: o.gateway,
          dns: o.dns?.length ? o.dns : undefined,
          dhcp: o.dhcp,
          hooksDir: o.hooks,
          boot: o.boot ?? 'auto',
        },
        name: o.name,
        cpus: o.cpus,
        memoryMiB: values.memoryMiB,
        compressLevel: o.compressLevel,
        chunkSize: values.chunkSize,
        baseMap: baseMapChoice(o),
        linkRate: values.linkRate,
        warm: o.warm,
        progress,
        progressOut,
        log,
      });
    } finally {
      if (progressOut) await closeProgressOut(progressOut);
    }
    if (o.report) await writeReportFile(o.report, report, o.force);
    if (!o.inspect && !o.dryRun && !o.quiet) process.stderr.write(formatReport(report));
  });
}
