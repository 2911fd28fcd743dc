/**
 * The stager's authorized_keys line: the forced command that is the whole
 * stager configuration (forced-command.ts), an owner's public key read from
 * a `.pub` file (one key, its type checked against the blob, no options),
 * and the line added to the account's authorized_keys without following a
 * symlink and without touching a line that is already there.
 */
import { constants } from 'node:fs';
import { P2vError } from '../lib/errors.js';
import type { Account } from './stager-account.js';
import { openNoFollow } from './stager-fs.js';

export const KEY_PLACEHOLDER = 'ssh-ed25519 AAAA… owner@machine';
const KEYS_MODE = 0o600;
const MAX_AUTHORIZED_KEYS = 1024 * 1024;
const KEY_TYPES = new Set([
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);

export function forcedCommand(staging: string, exports: string, diskSize: string): string {
  return `p2v-import --staging ${staging} --ganeti-export ${exports} --disk-size ${diskSize} --require-manifest`;
}

export function authorizedKeysLine(command: string, key: string = KEY_PLACEHOLDER): string {
  return `command="${command}",restrict ${key}`;
}

export interface PublicKey {
  type: string;
  blob: string;
  comment: string;
}

/** One OpenSSH public key, as in a `.pub` file; no options, no private key. */
export function parsePublicKey(text: string, file: string): PublicKey {
  if (text.includes('PRIVATE KEY')) {
    throw new P2vError('USAGE', `${file} is a private key`, { hint: 'give the owner\'s public key, the ".pub" file' });
  }
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
  const m = lines.length === 1 ? /^(\S+)\s+([A-Za-z0-9+/]+={0,2})(?:\s+(.*))?$/.exec(lines[0]!) : null;
  const blob = m ? Buffer.from(m[2]!, 'base64') : Buffer.alloc(0);
  // The blob names its own type: a key pasted with a wrong or forged type word is refused.
  const inner = blob.length >= 4 ? blob.subarray(4, 4 + blob.readUInt32BE(0)).toString('latin1') : '';
  if (!m || !KEY_TYPES.has(m[1]!) || inner !== m[1]) {
    throw new P2vError('USAGE', `${file} does not hold one SSH public key`, {
      hint: 'give the owner\'s ".pub" file: one line "ssh-ed25519 AAAA… comment", without options',
    });
  }
  // The comment is only for people reading the file: keep it plain.
  const comment = (m[3] ?? '')
    .replace(/[^A-Za-z0-9@._+:-]+/g, ' ')
    .trim()
    .slice(0, 100);
  return { type: m[1]!, blob: m[2]!, comment };
}

/** Add `line` for `key` to authorized_keys, creating it exclusively; a key already there is left alone. */
export async function addAuthorizedKey(
  file: string,
  line: string,
  key: PublicKey,
  account: Account,
): Promise<'added' | 'present'> {
  const { O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_APPEND } = constants;
  try {
    const fh = await openNoFollow(file, O_WRONLY | O_CREAT | O_EXCL | O_APPEND, KEYS_MODE);
    try {
      await fh.chown(account.uid, account.gid);
      await fh.chmod(KEYS_MODE);
      await fh.writeFile(line + '\n');
    } finally {
      await fh.close();
    }
    return 'added';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const fh = await openNoFollow(file, O_RDWR | O_APPEND);
  try {
    const st = await fh.stat();
    if (!st.isFile() || (st.uid !== account.uid && st.uid !== 0) || st.size > MAX_AUTHORIZED_KEYS) {
      throw new P2vError('USAGE', `${file} is not a regular file of ${account.name} or root under 1 MiB`, {
        hint: 'look at it, fix or remove it, and run this again',
      });
    }
    const text = (await fh.readFile()).toString('utf8');
    const lines = text.split('\n');
    const at = lines.findIndex((l) => l.split(/\s+/).includes(key.blob));
    if (at >= 0) {
      if (lines[at]!.trim() === line) return 'present';
      throw new P2vError('USAGE', `this key is already in ${file} (line ${at + 1}) with other options`, {
        hint: 'sshd uses the first line with a key: edit or remove that line, then run this again',
      });
    }
    if ((st.mode & 0o022) !== 0) await fh.chmod(KEYS_MODE); // sshd's StrictModes would ignore the file
    await fh.writeFile((text.length > 0 && !text.endsWith('\n') ? '\n' : '') + line + '\n');
    return 'added';
  } finally {
    await fh.close();
  }
}
