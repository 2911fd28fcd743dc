/**
 * p2v-ganeti-os: puts the p2v-image Ganeti OS definition in place on a node.
 *
 *   p2v-ganeti-os install [--os-dir DIR] [--name NAME]
 *   p2v-ganeti-os path
 *
 * Ganeti does not replicate OS definitions: run `install` on every node (or
 * copy the folder that `path` prints; docs/ganeti-os.md shows both ways).
 */
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../lib/cli.js';
import { P2vError } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';
import { toolVersion } from '../lib/version.js';
import { DEFAULT_OS_DIR, OS_NAME, OS_VARIANT, shippedDefinitionDir } from './definition.js';
import { installDefinition } from './install.js';

const TOOL = 'p2v-ganeti-os';

export function buildProgram(): Command {
  const program = new Command(TOOL)
    .description(
      `Install the ${OS_NAME} Ganeti OS definition (OS API 20), which imports p2v export\n` +
        'directories (gnt-backup import) and creates instances from disk images\n' +
        `(gnt-instance add -o ${OS_NAME}+${OS_VARIANT} -O image=PATH).`,
    )
    .version(`${TOOL} ${toolVersion()}`, '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'print this help and exit')
    .helpCommand('help [command]', 'print the help of a command')
    .showHelpAfterError(false);
  program
    .command('install')
    .description("install the OS definition on this node, in a directory of Ganeti's OS search path")
    .helpOption('-h, --help', 'print this help and exit')
    .option('--os-dir <dir>', `OS directory on Ganeti's search path (default ${DEFAULT_OS_DIR})`)
    .option('--name <name>', `OS name to install as (default ${OS_NAME})`)
    .option('-q, --quiet', 'print nothing when all goes well')
    .addHelpText('after', '\nThe OS search path is in `gnt-cluster info`. Run install on every node.\n')
    .action(async (o: { osDir?: string; name?: string; quiet?: boolean }) => {
      const log = createLogger({ tool: TOOL, quiet: o.quiet });
      const name = o.name ?? OS_NAME;
      const r = await installDefinition({ osDir: o.osDir ?? DEFAULT_OS_DIR, name });
      log.info(`${r.replaced ? 'replaced' : 'installed'} ${r.path} (${r.files.length} files)`);
      log.info(`check it with: gnt-os diagnose; use it as -o ${name}+${OS_VARIANT}`);
    });
  program
    .command('path')
    .description('print the folder of the shipped OS definition')
    .helpOption('-h, --help', 'print this help and exit')
    .action(() => {
      const dir = shippedDefinitionDir();
      if (!existsSync(join(dir, 'ganeti_api_version'))) {
        throw new P2vError('IO', `the shipped OS definition is missing (looked in ${dir})`, {
          hint: 'reinstall ganeti-p2v: the ganeti-os/p2v-image folder belongs next to dist/',
        });
      }
      process.stdout.write(dir + '\n');
    });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await runCommand({ tool: TOOL, program: buildProgram(), noCommandHint: `use ${TOOL} install or ${TOOL} path` }, argv);
}
