/**
 * With --ssh and --delta, the base map comes from the stager itself: `ssh
 * STAGER p2v-import --block-map NAME` (behind a forced command, only for the
 * name it pins: importer/forced-command.ts), read once as a stream while it
 * comes (base-map.ts `readOnce`: the header checked before anything is
 * sent, each disk's entries as they are compared). A stager with no base
 * for this machine yet says so, and the export is then a full one.
 */
import type { Readable } from 'node:stream';
import { Writable } from 'node:stream';
import { P2vError } from '../../lib/errors.js';
import { readBlockMap } from '../../ovf/delta/index.js';
import { openRemoteReceiver, type SshOptions } from '../ssh-transport.js';
import { readOnce, type BaseMapSource } from './base-map.js';

/** Remote stderr kept for the verdict (a few lines), and passed on to ours. */
function keepTail(into: { text: string }): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      into.text = (into.text + chunk.toString()).slice(-4096);
      cb();
    },
  });
}

/** The command that asks the stager for NAME's map: the receiver command with --block-map NAME. */
export function mapCommand(receiver: string, name: string): string {
  return `${receiver} --block-map ${name}`;
}

/**
 * The stager's map of `name`, or undefined when the stager has no base for it
 * (the first export of this machine). Any other failure is an error.
 */
export async function sshBaseMap(ssh: SshOptions, name: string): Promise<BaseMapSource | undefined> {
  const where = `the map of ${name} on ${ssh.target.host}`;
  const open = async (tail: { text: string }) => {
    const r = await openRemoteReceiver({ ...ssh, command: mapCommand(ssh.command, name), stderr: keepTail(tail) });
    r.stdin.end();
    // The channel is a duplex: its readable side is the remote command's standard output.
    const out = r.stdin as unknown as Readable;
    async function* bytes(): AsyncGenerator<Buffer> {
      for await (const b of out) yield b as Buffer;
      await r.done.catch((e: unknown) => {
        throw new P2vError(
          'SSH',
          `fetching ${where} failed: ${tail.text.trim().split('\n').at(-1) ?? (e as Error).message}`,
          {
            hint: 'see the stager’s message; or send a full export (without --delta)',
          },
        );
      });
    }
    return { r, stream: bytes() };
  };
  // One read: a stager with no base answers at once, with nothing on stdout; else its first bytes start the map.
  const probe = { text: '' };
  const first = await open(probe);
  const head = await first.stream.next().catch((e: unknown) => {
    if (/no base for /.test(probe.text)) return undefined;
    throw e;
  });
  if (head === undefined || head.done) {
    first.r.close();
    if (/no base for /.test(probe.text)) return undefined;
    throw new P2vError('SSH', `fetching ${where} gave nothing`, { hint: 'send a full export (without --delta)' });
  }
  async function* whole(): AsyncGenerator<Buffer> {
    yield head!.value as Buffer;
    yield* first.stream;
  }
  return readOnce(where, () => readBlockMap(whole(), where));
}
