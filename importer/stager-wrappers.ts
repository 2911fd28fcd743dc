/**
 * The tools on every user's PATH: small wrapper scripts in a root-owned
 * directory (/usr/local/bin) that run a built checkout's bin/*.js with a
 * given node, and the check, before anything changes, that the stager
 * account can read that checkout and run that node (a checkout under /root
 * is the usual way for it not to). A wrapper carries a mark, so a second run
 * replaces its own wrappers and refuses anything else in their place.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { quoteArgv } from '../lib/run.js';
import {
  ANYONE,
  firstBlocked,
  lstatOrNull,
  octal,
  prepareParents,
  refuseSymlink,
  step,
  type Access,
} from './stager-fs.js';

export const TOOLS = ['p2v-import', 'p2v-export', 'p2v-ganeti-os', 'p2v-ramboot'] as const;
export const DEFAULT_BIN_DIR = '/usr/local/bin';
/** The PATH Debian's sshd gives a session (compiled in; `sshd -T` does not show it). */
export const SSHD_DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin:/usr/games';
/** Marks a wrapper as ours, so that a second run may replace it and nothing else. */
const WRAPPER_MARK = 'installed by `p2v-import --setup-stager`';

/**
 * The account will run `node checkout/bin/*.js`: every directory on the way
 * and the files themselves must be open to it. Refuses, before anything
 * changes, the usual case of a checkout under /root.
 */
export async function checkCheckoutUsable(
  checkout: string,
  node: string,
  user: string,
  who: { uid: number; gids: number[] } = ANYONE,
): Promise<void> {
  const has = async (p: string) => (await lstat(p).catch(() => null)) !== null;
  if (!(await has(join(checkout, 'bin', 'p2v-import.js'))) || !(await has(join(checkout, 'package.json')))) {
    throw new P2vError('USAGE', `${checkout} is not a ganeti-p2v checkout`, {
      hint: 'run --setup-stager from the checkout: node bin/p2v-import.js --setup-stager …',
    });
  }
  if (!(await has(join(checkout, 'dist', 'importer', 'cli.js'))) || !(await has(join(checkout, 'node_modules')))) {
    throw new P2vError('USAGE', `${checkout} is not built`, {
      hint: `build it first: cd ${checkout} && npm run setup`,
    });
  }
  const needs: [string, Access][] = [
    [join(checkout, 'bin', 'p2v-import.js'), 4],
    [join(checkout, 'bin', 'entry.js'), 4],
    [join(checkout, 'dist', 'importer', 'cli.js'), 4],
    [join(checkout, 'package.json'), 4],
    [join(checkout, 'node_modules'), 1],
  ];
  for (const [p, bit] of needs) {
    const blocked = await firstBlocked(p, who, bit);
    if (blocked) {
      throw new P2vError(
        'USAGE',
        `user ${user} cannot read the checkout: ${blocked.path} is mode ${octal(blocked.mode)}` +
          (blocked.uid === 0 ? ' and owned by root' : ''),
        {
          hint:
            `put the checkout where every user can read it, e.g. cp -a ${checkout} /opt/ganeti-p2v ` +
            `(or git clone it there), and run --setup-stager again from there`,
        },
      );
    }
  }
  const blockedNode = await firstBlocked(node, who, 1);
  if (blockedNode) {
    throw new P2vError(
      'USAGE',
      `user ${user} cannot run ${node}: ${blockedNode.path} is mode ${octal(blockedNode.mode)}`,
      {
        hint: 'install Node.js 20+ where every user can run it (e.g. /usr/bin/node), then run this again',
      },
    );
  }
}

/** A root-owned directory nobody else can write: what every user's PATH may safely hold. */
export async function ensureBinDir(binDir: string): Promise<void> {
  await prepareParents(binDir, ANYONE, 'every user');
  let st = await step(`checking ${binDir}`, () => lstatOrNull(binDir));
  if (!st) {
    await step(`creating ${binDir}`, () => mkdir(binDir, { mode: 0o755 }));
    st = await step(`checking ${binDir}`, () => lstat(binDir));
  }
  if (st.isSymbolicLink()) refuseSymlink(binDir);
  if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0 || (st.mode & 0o005) !== 0o005) {
    throw new P2vError('USAGE', `${binDir} is not a root-owned directory that only root can write and all can read`, {
      hint: `use ${DEFAULT_BIN_DIR}, or fix its owner and mode (chown root: ${binDir}; chmod 755 ${binDir})`,
    });
  }
}

export function wrapperText(tool: string, node: string, checkout: string): string {
  return [
    '#!/bin/sh',
    `# ${tool}: ${WRAPPER_MARK} from ${checkout}.`,
    '# Run that again after moving the checkout; delete this file to uninstall.',
    `exec ${quoteArgv([node, join(checkout, 'bin', `${tool}.js`)])} "$@"`,
    '',
  ].join('\n');
}

/** Write or update one wrapper; anything in its place that is not ours is refused. */
export async function installWrapper(binDir: string, tool: string, text: string): Promise<'installed' | 'unchanged'> {
  const path = join(binDir, tool);
  const st = await step(`checking ${path}`, () => lstatOrNull(path));
  if (st?.isSymbolicLink()) refuseSymlink(path);
  if (st) {
    const old = st.isFile() && st.size < 64 * 1024 ? await step(`reading ${path}`, () => readFile(path, 'utf8')) : '';
    if (!old.includes(WRAPPER_MARK)) {
      throw new P2vError('USAGE', `${path} exists and was not installed by --setup-stager`, {
        hint: `remove it if it is an old copy of ganeti-p2v (rm ${path}), or give another --bin-dir`,
      });
    }
    if (old === text) return 'unchanged';
  }
  // A new file under a fresh name, renamed over the old one: never half a script on PATH.
  const tmp = join(binDir, `.${tool}.${randomBytes(6).toString('hex')}.tmp`);
  await step(`writing ${path}`, async () => {
    const fh = await open(tmp, 'wx', 0o755);
    try {
      await fh.writeFile(text);
      await fh.chmod(0o755);
    } finally {
      await fh.close();
    }
    await rename(tmp, path).catch(async (e) => {
      await unlink(tmp).catch(() => undefined);
      throw e;
    });
  });
  return 'installed';
}
