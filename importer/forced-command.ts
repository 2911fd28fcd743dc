/**
 * p2v-import as an SSH forced command
 * (`command="p2v-import --staging /srv/p2v --ganeti-export /srv/p2v/exports",restrict`).
 *
 * The key's command line is the whole configuration: where to stage, what
 * to write, the policy. What the client typed (SSH_ORIGINAL_COMMAND) is only
 * parsed for an allow-list that cannot move anything: `--name NAME`
 * (checked as a Ganeti instance name), `--verbose`, `--quiet`; a leading
 * `p2v-import` word is accepted so `ssh stager p2v-import --name web1` reads
 * naturally. Anything else (another command, paths, --staging, --ova, shell
 * syntax) is refused before a byte is read, with exit status 2.
 */
import { P2vError } from '../lib/errors.js';
import { checkInstanceName } from './instance-name.js';

export interface ClientRequest {
  name?: string;
  verbose?: boolean;
  quiet?: boolean;
}

export const CLIENT_OPTIONS = ['--name NAME', '--verbose', '--quiet'] as const;

function refuse(word: string): never {
  throw new P2vError('USAGE', `the SSH key only allows ${CLIENT_OPTIONS.join(', ')}; refused "${word.slice(0, 80)}"`, {
    hint: 'destinations and limits are set by the staging host in authorized_keys',
  });
}

/** Parse SSH_ORIGINAL_COMMAND; plain words separated by blanks, no shell syntax. */
export function parseClientCommand(original: string): ClientRequest {
  const words = original.split(/[ \t]+/).filter((w) => w.length > 0);
  const req: ClientRequest = {};
  let i = 0;
  if (words[0] === 'p2v-import' || words[0]?.endsWith('/p2v-import')) i++;
  for (; i < words.length; i++) {
    const w = words[i]!;
    if (w === '--verbose' || w === '-v') req.verbose = true;
    else if (w === '--quiet' || w === '-q') req.quiet = true;
    else if (w === '--name' && words[i + 1] !== undefined) req.name = checkInstanceName(words[++i]!);
    else if (w.startsWith('--name=')) req.name = checkInstanceName(w.slice('--name='.length));
    else refuse(w);
  }
  return req;
}
