/**
 * --ssh USER@STAGER: the OVA streamed into p2v-import on the stager over ssh2,
 * as `p2v-export --ovf | ssh USER@STAGER p2v-import` would. `setup` connects
 * and checks the host key first, so a wrong key or host fails in a second,
 * not after minutes of work; `finalize` waits for the receiver's exit status,
 * which is the real end of the export.
 */
import { onExit, type ExitHandle } from '../../lib/exit-actions.js';
import { openRemoteReceiver, type RemoteReceiver, type SshOptions } from '../ssh-transport.js';
import type { ExportOutput } from './types.js';

export function sshOutput(ssh: SshOptions, kind: 'ssh' | 'direct' = 'ssh'): ExportOutput {
  let receiver: RemoteReceiver | undefined;
  let closeHandle: ExitHandle | undefined;
  const started = (): RemoteReceiver => {
    if (!receiver) throw new Error(`${kind} output used before setup`);
    return receiver;
  };
  return {
    kind,
    where: `${ssh.target.user}@${ssh.target.host}`,
    setupPhase: 'connect',
    async setup() {
      const r = await openRemoteReceiver(ssh);
      receiver = r;
      closeHandle = onExit('close SSH connection', () => r.close());
    },
    async send(write) {
      const r = started();
      const writing = write({ mode: 'stream', stream: r.stdin }).then((result) => {
        r.stdin.end();
        return result;
      });
      // A receiver that gives up mid-stream stops reading: its exit status, not a
      // write blocked forever on a full channel, is what ends the export.
      return Promise.race([writing, r.done.then(() => writing)]);
    },
    async finalize() {
      await started().done;
    },
    async abort() {
      await closeHandle?.run();
    },
  };
}
