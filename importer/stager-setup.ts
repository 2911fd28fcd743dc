/**
 * `p2v-import --setup-stager`: make this machine a stager in one step, as
 * root, from a built checkout. It puts the four tools on every user's PATH
 * (small wrapper scripts in /usr/local/bin that run this checkout's bin/*.js
 * with this node), creates the unprivileged account the machine owners' keys
 * log into, gives it its staging and export directories, and prints (or
 * appends) the restricted authorized_keys line whose forced command is the
 * whole stager configuration (forced-command.ts).
 *
 * Why a command and not a page of steps: each step an admin did by hand was a
 * way for the stager not to work (a forced command not on sshd's PATH, a
 * staging directory root still owned, a checkout under /root the account
 * cannot read, a key line without the size policy). Running it again is
 * harmless: what is already right is left alone, what is in the way and not
 * ours is refused, never replaced.
 *
 * Everything it writes is written without following a symlink it did not
 * make (stager-fs.ts). This module is the sequence and the command line; the
 * jobs are stager-account.ts (the account), stager-fs.ts (directories),
 * stager-wrappers.ts (the tools on PATH) and stager-key.ts (the key line).
 */
import { open, realpath } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { runCommand } from '../lib/cli.js';
import { P2vError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/log.js';
import { run } from '../lib/run.js';
import { parseSize } from './size.js';
import { checkAccount, ensureAccount, lookupAccount, type Account } from './stager-account.js';
import { ANYONE, ensureAccountDir, lstatOrNull, octal, step } from './stager-fs.js';
import { addAuthorizedKey, authorizedKeysLine, forcedCommand, KEY_PLACEHOLDER, parsePublicKey } from './stager-key.js';
import {
  checkCheckoutUsable,
  DEFAULT_BIN_DIR,
  ensureBinDir,
  installWrapper,
  SSHD_DEFAULT_PATH,
  TOOLS,
  wrapperText,
} from './stager-wrappers.js';

export type { Account } from './stager-account.js';
export { authorizedKeysLine, forcedCommand, KEY_PLACEHOLDER, parsePublicKey, type PublicKey } from './stager-key.js';
export { checkCheckoutUsable, DEFAULT_BIN_DIR, SSHD_DEFAULT_PATH, TOOLS } from './stager-wrappers.js';
export { firstBlocked } from './stager-fs.js';

export interface StagerSetupOptions {
  /** The account the owners' keys log into (created when missing). */
  user: string;
  /** Absolute path of the staging directory (the forced command's --staging). */
  staging: string;
  /** Absolute path of the Ganeti export directory; default `<staging>/exports`. */
  exports?: string;
  /** The forced command's --disk-size policy, e.g. "500G". */
  diskSize: string;
  /** Where the wrappers go; must be on the PATH sshd gives a session. */
  binDir: string;
  /** An owner's public key file to add to the account's authorized_keys. */
  keyFile?: string;
  /** The built checkout the wrappers run (default: the one this module is in). */
  checkout: string;
  /** The node the wrappers run (default: this one). */
  node: string;
  logger: Logger;
}

export interface StagerSetupResult {
  user: Account & { created: boolean };
  wrappers: string[];
  staging: string;
  exports: string;
  authorizedKeys: string;
  /** The authorized_keys line: with the key of keyFile, else with KEY_PLACEHOLDER. */
  line: string;
  /** 'added' or 'present' with keyFile; undefined without. */
  key?: 'added' | 'present';
}

export const DEFAULT_DISK_SIZE = '500G';

const STAGING_MODE = 0o750;
const SSH_DIR_MODE = 0o700;
const MAX_KEY_FILE = 16 * 1024;

/** Paths that end up inside `command="…"` and a shell script: plain characters only. */
const SAFE_PATH = /^(\/[A-Za-z0-9._+-]+)+$/;
const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

/** The checkout this module was built from: dist/importer/stager-setup.js → ../.. */
export function thisCheckout(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

// ---------------------------------------------------------------------------
// Checks on the arguments, before anything changes.

function checkPath(path: string, option: string): string {
  if (!SAFE_PATH.test(path) || path !== resolve(path) || path.split('/').some((c) => c === '.' || c === '..')) {
    throw new P2vError('USAGE', `${option} must be an absolute path of plain characters, got "${path}"`, {
      hint: 'letters, digits and . _ + - between slashes, e.g. /srv/p2v; it goes into the key line and a script',
    });
  }
  return path;
}

function checkDiskSize(text: string): string {
  parseSize(text, '--disk-size');
  if (!/^\d+[KMGTP]?$/i.test(text)) {
    throw new P2vError('USAGE', `--disk-size for the key line must be a number with a unit, got "${text}"`, {
      hint: 'e.g. 500G or 2T',
    });
  }
  return text;
}

export async function setupStager(o: StagerSetupOptions): Promise<StagerSetupResult> {
  const { logger } = o;
  if (process.getuid?.() !== 0) {
    throw new P2vError('USAGE', '--setup-stager must run as root (it creates a user, directories and wrappers)');
  }
  if (!USER_NAME.test(o.user)) {
    throw new P2vError('USAGE', `invalid user name "${o.user}"`, {
      hint: 'lower-case letters, digits, _ and -, e.g. p2v',
    });
  }
  const staging = checkPath(o.staging, '--staging');
  const exports = checkPath(o.exports ?? join(staging, 'exports'), '--exports');
  const binDir = checkPath(o.binDir, '--bin-dir');
  const diskSize = checkDiskSize(o.diskSize);
  const checkout = await step(`reading ${o.checkout}`, () => realpath(o.checkout));
  const node = await step(`reading ${o.node}`, () => realpath(o.node));
  if (/[\u0000-\u001f\u007f]/.test(checkout + node)) {
    throw new P2vError('USAGE', `the checkout path ${checkout} has control characters`, { hint: 'move it' });
  }
  const key =
    o.keyFile === undefined
      ? undefined
      : parsePublicKey(
          await step(`reading ${o.keyFile}`, async () => {
            const fh = await open(o.keyFile!, 'r');
            try {
              const st = await fh.stat();
              if (!st.isFile() || st.size > MAX_KEY_FILE) throw new P2vError('USAGE', `${o.keyFile} is not a key file`);
              return (await fh.readFile()).toString('utf8');
            } finally {
              await fh.close();
            }
          }),
          o.keyFile,
        );
  const existing = await lookupAccount(o.user);
  if (existing) checkAccount(existing);
  await checkCheckoutUsable(checkout, node, o.user, existing ?? ANYONE);

  await ensureBinDir(binDir);
  const account = await ensureAccount(o.user, logger);

  const wrappers: string[] = [];
  for (const tool of TOOLS) {
    const how = await installWrapper(binDir, tool, wrapperText(tool, node, checkout));
    wrappers.push(join(binDir, tool));
    logger.debug(`${join(binDir, tool)}: ${how}`);
  }
  logger.info(`${binDir}: ${TOOLS.join(', ')} (running ${checkout} with ${node})`);
  // The proof that counts: the account itself runs the wrapper, as sshd will.
  const probe = await run('runuser', ['-u', account.name, '--', join(binDir, 'p2v-import'), '--help'], {
    reject: false,
    cwd: '/',
  });
  if (probe.exitCode !== 0 || !String(probe.stdout).includes('p2v-import')) {
    throw new P2vError('IO', `user ${account.name} cannot run ${join(binDir, 'p2v-import')}`, {
      stderrTail: String(probe.stderr).split('\n').slice(-6).join('\n'),
      hint: `make the checkout readable by every user (chmod -R a+rX ${checkout}) and run this again`,
    });
  }
  if (!SSHD_DEFAULT_PATH.split(':').includes(binDir)) {
    logger.warn(
      `${binDir} is not on the PATH sshd gives a session (${SSHD_DEFAULT_PATH}): ` +
        `add "SetEnv PATH=${binDir}:${SSHD_DEFAULT_PATH}" to sshd_config, or leave --bin-dir at ${DEFAULT_BIN_DIR}`,
    );
  }

  for (const [dir, what] of [
    [staging, 'staging'],
    [exports, 'exports'],
  ] as const) {
    const how = await ensureAccountDir(dir, account, STAGING_MODE);
    logger.info(`${what} ${dir}: ${how}, owner ${account.name}, mode ${octal(STAGING_MODE)}`);
  }
  // An account made earlier without --create-home: its home is made for it, not left to root.
  if (!(await step(`checking ${account.home}`, () => lstatOrNull(account.home)))) {
    await ensureAccountDir(account.home, account, 0o750);
  }
  const sshDir = join(account.home, '.ssh');
  await ensureAccountDir(sshDir, account, SSH_DIR_MODE);
  const authorizedKeys = join(sshDir, 'authorized_keys');

  const command = forcedCommand(staging, exports, diskSize);
  const line = authorizedKeysLine(command, key && [key.type, key.blob, key.comment].filter(Boolean).join(' '));
  let keyState: 'added' | 'present' | undefined;
  if (key) {
    keyState = await step(`adding the key to ${authorizedKeys}`, () =>
      addAuthorizedKey(authorizedKeys, line, key, account),
    );
    logger.info(
      `${authorizedKeys}: key ${key.comment || key.type} ${keyState === 'added' ? 'added' : 'already there'}`,
    );
  } else {
    logger.info(`add this line to ${authorizedKeys}, with the owner's public key in place of "${KEY_PLACEHOLDER}":`);
  }
  return { user: account, wrappers, staging, exports, authorizedKeys, line, key: keyState };
}

// ---------------------------------------------------------------------------
// The command line: `p2v-import --setup-stager …` (dispatched from cli.ts).

interface SetupCliOptions {
  user: string;
  staging: string;
  exports?: string;
  diskSize?: string;
  binDir?: string;
  key?: string;
  verbose?: boolean;
  quiet?: boolean;
}

export function buildSetupCommand(): Command {
  return new Command('p2v-import --setup-stager')
    .description(
      'As root, set this host up as a stager: put the tools on PATH, create the\n' +
        'account and its directories, and print its restricted authorized_keys line.',
    )
    .requiredOption('--setup-stager', 'this mode')
    .requiredOption('--user <name>', 'account the owners log into, created if missing')
    .requiredOption('--staging <dir>', 'staging directory of that account, e.g. /srv/p2v')
    .option('--exports <dir>', 'its Ganeti export directory (<staging>/exports)')
    .option('--disk-size <max>', `largest disk the key accepts (${DEFAULT_DISK_SIZE})`)
    .option('--bin-dir <dir>', `where the tools go, on sshd's PATH (${DEFAULT_BIN_DIR})`)
    .option('--key <file.pub>', "add this owner's public key to authorized_keys")
    .option('-v, --verbose', 'more messages')
    .option('-q, --quiet', 'errors only')
    .addOption(new Option('--debug', 'stack traces on errors').hideHelp())
    .allowExcessArguments(false);
}

export async function setupStagerMain(argv: string[]): Promise<void> {
  const program = buildSetupCommand();
  await runCommand({ tool: 'p2v-import', program, refuseDashValues: false }, argv, async () => {
    const o = program.opts<SetupCliOptions>();
    const logger = createLogger({ tool: 'p2v-import', verbose: o.verbose, quiet: o.quiet });
    const result = await setupStager({
      user: o.user,
      staging: o.staging,
      exports: o.exports,
      diskSize: o.diskSize ?? DEFAULT_DISK_SIZE,
      binDir: o.binDir ?? DEFAULT_BIN_DIR,
      keyFile: o.key,
      checkout: thisCheckout(),
      node: process.execPath,
      logger,
    });
    process.stdout.write(result.line + '\n');
  });
}
