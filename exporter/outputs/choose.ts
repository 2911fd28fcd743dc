/**
 * The one place an output is chosen from the command line's words (virt-v2v's
 * parse_options): one destination of --ovf, -o, --ssh, --direct, with the
 * options that go with it checked here, before anything runs. Nothing is
 * opened or connected: that is each output's `setup`.
 */
import { P2vError } from '../../lib/errors.js';
import { parseSshTarget } from '../ssh-transport.js';
import { DEFAULT_TARGET_DEVICE, directOutput } from './direct.js';
import { fileOutput } from './file.js';
import { sshOutput } from './ssh.js';
import { stdoutOutput } from './stdout.js';
import type { ExportOutput } from './types.js';

/** The output options of p2v-export, as commander gives them. */
export interface OutputChoice {
  ovf?: boolean;
  output?: string;
  force?: boolean;
  ssh?: string;
  key?: string;
  hostKey?: string;
  knownHosts?: string[];
  remoteCommand?: string;
  direct?: string;
  targetDevice?: string;
  /** --report FILE: --force lets it replace that file too, so --force is not only -o's. */
  report?: string;
  /** --inspect or --dry-run: nothing is sent, so no output is needed. */
  sendsNothing?: boolean;
}

/** The output the options name, or undefined when the run sends nothing. */
export function chooseOutput(o: OutputChoice): ExportOutput | undefined {
  const modes = [o.ovf && '--ovf', o.output && '-o', o.ssh && '--ssh', o.direct && '--direct'].filter(Boolean);
  if (modes.length > 1)
    throw new P2vError('USAGE', `${modes.join(' and ')} cannot be combined`, { hint: 'choose one destination' });
  if (o.sendsNothing) return undefined;
  if (o.ssh || o.direct) {
    const device = o.targetDevice ?? DEFAULT_TARGET_DEVICE;
    if (o.direct && !/^\/dev\/[\w/-]+$/.test(device))
      throw new P2vError('USAGE', `bad --target-device "${device}"`, {
        hint: 'name the target disk, e.g. /dev/vda',
      });
    const ssh = {
      target: parseSshTarget((o.ssh ?? o.direct)!),
      keyFile: o.key,
      hostKey: o.hostKey,
      knownHosts: o.knownHosts?.length ? o.knownHosts : undefined,
      command: o.remoteCommand,
    };
    return o.direct
      ? directOutput({ ...ssh, device })
      : sshOutput({ ...ssh, command: o.remoteCommand ?? 'p2v-import' });
  }
  if (o.force && !(o.output && o.output !== '-') && !o.report)
    throw new P2vError('USAGE', '--force goes with -o FILE', { hint: 'it lets -o replace an existing file' });
  if (o.output && o.output !== '-') return fileOutput({ path: o.output, force: o.force });
  if (!o.ovf && o.output !== '-')
    throw new P2vError('USAGE', 'no destination given', {
      hint: 'use --ovf (stream to stdout), -o FILE.ova, or --ssh USER@STAGER',
    });
  if (process.stdout.isTTY)
    throw new P2vError('USAGE', 'refusing to write an OVA stream to a terminal', {
      hint: 'pipe it: p2v-export --ovf … | ssh stager p2v-import',
    });
  return stdoutOutput();
}
