/**
 * p2v-ramboot build --kernel RELEASE -o initrd.img: write the ramboot
 * initramfs (see build.ts and docs/ramboot.md) for a kernel whose modules are
 * installed on this host.
 * p2v-ramboot receiver -o DIR: write the receiver bundle the p2v-target OS
 * copies into the bootstrap system (receiver.ts).
 */
import { Command, Option } from 'commander';
import { runCommand } from '../lib/cli.js';
import { createLogger } from '../lib/log.js';
import { toolVersion } from '../lib/version.js';
import { buildRamInitrd, DEFAULT_MODULES } from './build.js';
import { bundleReceiver, DEFAULT_RECEIVER_DIR } from './receiver.js';

interface BuildOptions {
  kernel: string;
  output: string;
  modulesDir?: string;
  busybox?: string;
  addModule?: string[];
  compress: boolean;
  quiet?: boolean;
  json?: boolean;
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), ...v.split(',').filter(Boolean)];

interface ReceiverOptions {
  output: string;
  source?: string;
  quiet?: boolean;
  json?: boolean;
}

export function buildCommand(
  onBuild: (o: BuildOptions) => Promise<void>,
  onReceiver: (o: ReceiverOptions) => Promise<void> = async () => undefined,
): Command {
  const program = new Command('p2v-ramboot')
    .description(
      'Build the initramfs that runs a Ganeti instance from RAM, leaving its disk free for p2v-import --device.',
    )
    .version(`p2v-ramboot ${toolVersion()}`, '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'print this help and exit')
    .helpCommand('help [command]', 'print the help of a command')
    .addOption(new Option('--debug', 'stack traces on errors').hideHelp());
  program
    .command('build')
    .description('write the ramboot initrd for a kernel release')
    .helpOption('-h, --help', 'print this help and exit')
    .requiredOption('--kernel <release>', 'kernel release (a directory in --modules-dir)')
    .requiredOption('-o, --output <file>', 'initrd file to write')
    .option('--modules-dir <dir>', 'where RELEASE/modules.dep is (default /lib/modules)')
    .option('--busybox <path>', 'static busybox to include (default /bin/busybox)')
    .option('--add-module <name>', 'kernel module to add (repeatable or comma-separated)', collect)
    .option('--no-compress', 'write a plain cpio archive instead of gzip')
    .option('--json', 'print the build report as JSON on stdout')
    .option('-q, --quiet', 'errors only')
    .allowExcessArguments(false)
    .addHelpText(
      'after',
      `\nAlways included: ${DEFAULT_MODULES.join(', ')}.`.replace(/(.{1,79})(?: |$)/g, '$1\n').trimEnd() +
        '\n\nExample: p2v-ramboot build --kernel 6.1.0-56-amd64 -o /boot/initrd-ramboot.img\n',
    )
    .action(async (o: BuildOptions) => onBuild(o));
  program
    .command('receiver')
    .description('write the receiver bundle (p2v-import and its dependencies) that p2v-target installs on the target')
    .helpOption('-h, --help', 'print this help and exit')
    .option('-o, --output <dir>', 'folder to write; an existing one is replaced', DEFAULT_RECEIVER_DIR)
    .option('--source <dir>', 'ganeti-p2v installation to bundle (default: this one)')
    .option('--json', 'print the bundle report as JSON on stdout')
    .option('-q, --quiet', 'errors only')
    .allowExcessArguments(false)
    .addHelpText('after', `\nExample: p2v-ramboot receiver -o ${DEFAULT_RECEIVER_DIR}\n`)
    .action(async (o: ReceiverOptions) => onReceiver(o));
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildCommand(
    async (o) => {
      const log = createLogger({ tool: 'p2v-ramboot', quiet: o.quiet });
      const r = await buildRamInitrd({
        kernelRelease: o.kernel,
        output: o.output,
        modulesDir: o.modulesDir ?? '/lib/modules',
        busybox: o.busybox ?? '/bin/busybox',
        addModules: o.addModule ?? [],
        compression: o.compress ? 'gzip' : 'none',
      });
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      log.info(
        `wrote ${r.output} (${r.bytes} bytes) for ${r.kernelRelease}: ${r.modules.length} modules${r.builtin.length ? `, built in: ${r.builtin.join(' ')}` : ''}`,
      );
      log.info(`boot it with: root=UUID=<bootstrap root> console=ttyS0 (see docs/ramboot.md)`);
    },
    async (o) => {
      const log = createLogger({ tool: 'p2v-ramboot', quiet: o.quiet });
      const r = await bundleReceiver({ output: o.output, source: o.source });
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      log.info(`wrote ${r.output}: p2v-import ${r.version} with ${r.packages.length} production packages`);
    },
  );
  await runCommand({ tool: 'p2v-ramboot', program, noCommandHint: 'p2v-ramboot build --kernel RELEASE -o FILE' }, argv);
}
