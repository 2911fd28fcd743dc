/**
 * p2v-ramboot build --kernel RELEASE -o initrd.img: write the ramboot
 * initramfs (see build.ts and docs/ramboot.md) for a kernel whose modules are
 * installed on this host.
 */
import { Command, Option } from 'commander';
import { runCli } from '../lib/cli.js';
import { P2vError } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { buildRamInitrd, DEFAULT_MODULES } from './build.js';

interface BuildOptions {
  kernel: string;
  output: string;
  modulesDir: string;
  busybox: string;
  addModule?: string[];
  compress: boolean;
  quiet?: boolean;
  json?: boolean;
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), ...v.split(',').filter(Boolean)];

export function buildCommand(onBuild: (o: BuildOptions) => Promise<void>): Command {
  const program = new Command('p2v-ramboot')
    .description(
      'Build the initramfs that runs a Ganeti instance from RAM, leaving its disk free for p2v-import --device',
    )
    .addOption(new Option('--debug', 'stack traces on errors').hideHelp())
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: () => undefined });
  program
    .command('build')
    .description('write the ramboot initrd for a kernel release')
    .requiredOption(
      '--kernel <release>',
      'kernel release the initrd is for (a directory under --modules-dir, e.g. 6.1.0-56-amd64)',
    )
    .requiredOption('-o, --output <file>', 'initrd file to write')
    .option('--modules-dir <dir>', 'where RELEASE/modules.dep and the modules are', '/lib/modules')
    .option('--busybox <path>', 'statically linked busybox to include', '/bin/busybox')
    .option(
      '--add-module <name>',
      `kernel module to add (repeatable or comma-separated; always included: ${DEFAULT_MODULES.join(', ')})`,
      collect,
    )
    .option('--no-compress', 'write a plain cpio archive instead of gzip')
    .option('--json', 'print the build report as JSON on stdout')
    .option('-q, --quiet', 'errors only')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: () => undefined })
    .allowExcessArguments(false)
    .action(async (o: BuildOptions) => onBuild(o));
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await runCli('p2v-ramboot', async () => {
    const cmd = buildCommand(async (o) => {
      const log = createLogger({ tool: 'p2v-ramboot', quiet: o.quiet });
      const r = await buildRamInitrd({
        kernelRelease: o.kernel,
        output: o.output,
        modulesDir: o.modulesDir,
        busybox: o.busybox,
        addModules: o.addModule ?? [],
        compression: o.compress ? 'gzip' : 'none',
      });
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      log.info(
        `wrote ${r.output} (${r.bytes} bytes) for ${r.kernelRelease}: ${r.modules.length} modules${r.builtin.length ? `, built in: ${r.builtin.join(' ')}` : ''}`,
      );
      log.info(`boot it with: root=UUID=<bootstrap root> console=ttyS0 (see docs/ramboot.md)`);
    });
    try {
      await cmd.parseAsync(argv);
    } catch (e) {
      if (e instanceof P2vError) throw e;
      const err = e as { code?: string; message?: string };
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return;
      if (err.code === 'commander.help')
        throw new P2vError('USAGE', 'no command given', { hint: 'p2v-ramboot build --kernel RELEASE -o FILE' });
      throw new P2vError('USAGE', (err.message ?? String(e)).replace(/^error: /, ''), {
        hint: 'see p2v-ramboot build --help',
      });
    }
  });
}
