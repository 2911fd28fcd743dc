/**
 * --direct USER@TARGET: the instance itself, booted from RAM (docs/ramboot.md),
 * receives disk 0 onto its own disk as it arrives, then powers off so Ganeti
 * starts it from that disk. The transport is the ssh output's; what differs is
 * the receiver it runs (p2v-import --device on the target) and what `setup`
 * learns first: one short SSH session asks the target how big its disk is, so
 * a key the target refuses, or a machine that does not fit, is said before
 * any work starts and before a byte reaches the target's disk. With a
 * --remote-command of the user's own there is no probe (it may write
 * elsewhere than the device), so no size.
 *
 *   directOutput({ target, keyFile, hostKey, device })   ExportOutput; after setup(), targetDiskSize
 *   (export.ts then fits disk 0 to that size: docs/design-fit.md)
 */
import { stat } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { P2vError } from '../../lib/errors.js';
import { formatBytes } from '../../lib/units.js';
import { run } from '../../lib/run.js';
import { openRemoteReceiver, type SshOptions } from '../ssh-transport.js';
import { sshOutput } from './ssh.js';
import type { ExportOutput } from './types.js';

/** The target's disk that --direct writes when --target-device is not given. */
export const DEFAULT_TARGET_DEVICE = '/dev/vda';

export function directReceiverCommand(device: string): string {
  return `p2v-import --staging /run/p2v --device ${device} --power-off`;
}

/** The remote command of the size probe: bytes of DEVICE on stderr (the only stream the transport hands back). */
export function sizeProbeCommand(device: string): string {
  return `blockdev --getsize64 ${device} 1>&2`;
}

type DirectOptions = Omit<SshOptions, 'command'> & { command?: string; device: string };

/** True when ssh2 gave up because the server accepted none of our keys. */
function isAuthRefusal(e: unknown): boolean {
  for (let c: unknown = e; c instanceof Error; c = c.cause)
    if ((c as Error & { level?: string }).level === 'client-authentication') return true;
  return false;
}

/** Ask the target for the size of DEVICE; a refused key becomes the direct path's own message. */
export async function probeTargetDisk(opts: DirectOptions): Promise<number> {
  const { device, command: _ignored, ...ssh } = opts;
  const where = `${ssh.target.user}@${ssh.target.host}`;
  let text = '';
  const capture = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (text.length < 4096) text += chunk.toString('utf8');
      done();
    },
  });
  try {
    const r = await openRemoteReceiver({ ...ssh, command: sizeProbeCommand(device), stderr: capture });
    r.stdin.end();
    await r.done;
  } catch (e) {
    if (isAuthRefusal(e))
      throw new P2vError(
        'SSH',
        `the target ${where} refused the key${ssh.keyFile ? ' ' + ssh.keyFile : ''}: its public half is not in root's authorized_keys there`,
        {
          hint: "use the key whose .pub the instance's authorized_key_url serves (or its -O authorized_key); the target keeps waiting, its disk untouched",
          cause: e,
        },
      );
    if (e instanceof P2vError && text.trim())
      throw new P2vError('SSH', `cannot read the size of ${device} on ${where}: ${text.trim().split('\n')[0]}`, {
        hint: 'check --target-device names the instance disk (lsblk on the target)',
        cause: e,
      });
    throw e;
  }
  const bytes = Number(text.trim());
  if (!/^\d+$/.test(text.trim()) || bytes <= 0)
    throw new P2vError('SSH', `the target ${where} did not report the size of ${device} (got "${text.trim()}")`, {
      hint: 'check --target-device names the instance disk and that the target runs the p2v-target bootstrap system',
    });
  return bytes;
}

export function directOutput(ssh: DirectOptions): ExportOutput {
  const { device, command, ...rest } = ssh;
  const inner = sshOutput({ ...rest, command: command ?? directReceiverCommand(device) }, 'direct');
  const out: ExportOutput = {
    kind: inner.kind,
    where: inner.where,
    setupPhase: inner.setupPhase,
    async setup() {
      // A --remote-command receiver writes where it says, not necessarily DEVICE: nothing to measure then.
      if (command === undefined) out.targetDiskSize = await probeTargetDisk(ssh);
      await inner.setup();
    },
    send: (write) => inner.send(write),
    finalize: () => inner.finalize(),
    abort: () => inner.abort(),
  };
  return out;
}
