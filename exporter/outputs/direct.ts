/**
 * --direct USER@TARGET: the instance itself, booted from RAM (docs/ramboot.md),
 * receives disk 0 onto its own disk as it arrives, then powers off so Ganeti
 * starts it from that disk. The transport is the ssh output's; what differs is
 * the receiver it runs: p2v-import --device on the target.
 */
import type { SshOptions } from '../ssh-transport.js';
import { sshOutput } from './ssh.js';
import type { ExportOutput } from './types.js';

/** The target's disk that --direct writes when --target-device is not given. */
export const DEFAULT_TARGET_DEVICE = '/dev/vda';

export function directReceiverCommand(device: string): string {
  return `p2v-import --staging /run/p2v --device ${device} --power-off`;
}

export function directOutput(ssh: Omit<SshOptions, 'command'> & { command?: string; device: string }): ExportOutput {
  const { device, command, ...rest } = ssh;
  return sshOutput({ ...rest, command: command ?? directReceiverCommand(device) }, 'direct');
}
