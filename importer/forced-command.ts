/**
 * p2v-import as an SSH forced command
 * (`command="p2v-import --staging /srv/p2v --ganeti-export /srv/p2v/exports",restrict`).
 *
 * Two command lines meet here. The forced command's own words (process.argv)
 * are the admin's: where to stage, what to write, the policy, and any option
 * the admin chose to pin (`--name web1`). What the client typed arrives in
 * SSH_ORIGINAL_COMMAND and is only parsed for an allow-list that cannot move
 * anything: `--name NAME` (checked as a Ganeti instance name), `--verbose`,
 * `--quiet`, `--progress-fd 1` (JSON progress lines on the client's own
 * stdout, which an import leaves free; stderr is the text log),
 * `--version`, and `--block-map NAME` for the name the forced command pins
 * with `--name` only (a base's map, docs/design-delta.md); a leading `p2v-import` word is accepted so
 * `ssh stager p2v-import --name web1` reads naturally.
 *
 * The admin's words are final: a client word may only add a setting the
 * forced command left open. A client option the forced command already set
 * is refused, never silently overridden and never silently ignored, so the
 * sender learns at once that its `--name` would not be used. Housekeeping
 * (`--list`, `--remove`, `--from-staged`) is refused by name: behind a key
 * that many owners share it would show or delete other people's imports.
 * Anything else (another command, paths, --staging, --ova, shell syntax) is
 * refused before a byte is read. Every refusal exits with status 2.
 */
import { P2vError } from '../lib/errors.js';
import { checkInstanceName } from '../lib/instance-name.js';

export interface ClientRequest {
  name?: string;
  verbose?: boolean;
  quiet?: boolean;
  /** Always 1: JSON progress lines on the client's stdout. */
  progressFd?: number;
  version?: boolean;
  /** --block-map NAME: the base map of the machine the forced command pins with --name, and only that one. */
  blockMap?: string;
}

export const CLIENT_OPTIONS = [
  '--name NAME',
  '--verbose',
  '--quiet',
  '--progress-fd 1',
  '--version',
  '--block-map NAME',
] as const;

/** Staging-host housekeeping: never for a client of a (possibly shared) key. */
const HOUSEKEEPING = ['--list', '--remove', '--from-staged', '--setup-stager'];

/**
 * The admin's settings that decide each client option, by commander
 * attribute and spelling: `--progress` and `--progress-fd` are one setting
 * (where and how progress goes), so an admin's `--progress none` also pins it.
 */
const PINNED_BY: Record<keyof Omit<ClientRequest, 'version' | 'blockMap'>, [attribute: string, flag: string][]> = {
  name: [['name', '--name']],
  verbose: [['verbose', '--verbose']],
  quiet: [['quiet', '--quiet']],
  progressFd: [
    ['progressFd', '--progress-fd'],
    ['progress', '--progress'],
  ],
};

/** Which option attributes the forced command set itself (commander value source "cli"). */
export type PinnedOptions = (attribute: string) => boolean;

function clip(text: string): string {
  return text.length > 80 ? text.slice(0, 80) + '…' : text;
}

function refuse(word: string): never {
  throw new P2vError('USAGE', `the SSH key only allows ${CLIENT_OPTIONS.join(', ')}; refused "${clip(word)}"`, {
    hint: 'destinations and limits are set by the staging host in authorized_keys',
  });
}

function refuseHousekeeping(word: string): never {
  throw new P2vError(
    'USAGE',
    `${word.split('=')[0]} is for the staging host's admin, not through the SSH key; refused "${clip(word)}"`,
    { hint: "a key may be shared: run housekeeping on the staging host itself (see docs/importer.md, 'Housekeeping')" },
  );
}

function refusePinned(flag: string, words: string): never {
  throw new P2vError('USAGE', `${flag} is set by the staging host's forced command; refused "${clip(words)}"`, {
    hint: 'leave it out: the staging host decides it for this key',
  });
}

function parseClientFd(text: string, word: string): number {
  if (text !== '1') {
    throw new P2vError('USAGE', `through the SSH key --progress-fd takes only 1; refused "${clip(word)}"`, {
      hint: '--progress-fd 1 sends JSON progress lines to your ssh standard output; the log stays on standard error',
    });
  }
  return Number(text);
}

/**
 * Parse SSH_ORIGINAL_COMMAND (plain words separated by blanks, no shell
 * syntax) and refuse any option the forced command pinned.
 */
export function parseClientCommand(
  original: string,
  pinned: PinnedOptions = () => false,
  pinnedName?: string,
): ClientRequest {
  const words = original.split(/[ \t]+/).filter((w) => w.length > 0);
  const req: ClientRequest = {};
  /** The words that set each option, for the refusal message. */
  const said = new Map<keyof ClientRequest, string>();
  let i = 0;
  if (words[0] === 'p2v-import' || words[0]?.endsWith('/p2v-import')) i++;
  const value = (w: string, flag: string): string | undefined => {
    if (w === flag && words[i + 1] !== undefined) return words[++i]!;
    if (w.startsWith(flag + '=')) return w.slice(flag.length + 1);
    return undefined;
  };
  for (; i < words.length; i++) {
    const w = words[i]!;
    let v: string | undefined;
    if (w === '--verbose' || w === '-v') {
      req.verbose = true;
      said.set('verbose', w);
    } else if (w === '--quiet' || w === '-q') {
      req.quiet = true;
      said.set('quiet', w);
    } else if (w === '--version') {
      req.version = true;
    } else if ((v = value(w, '--name')) !== undefined) {
      req.name = checkInstanceName(v);
      said.set('name', w === '--name' ? `--name ${v}` : w);
    } else if ((v = value(w, '--progress-fd')) !== undefined) {
      const spelled = w === '--progress-fd' ? `--progress-fd ${v}` : w;
      req.progressFd = parseClientFd(v, spelled);
      said.set('progressFd', spelled);
    } else if ((v = value(w, '--block-map')) !== undefined) {
      // A map tells which blocks a machine holds: only the machine's own, the name the admin pinned for this key.
      if (!pinnedName || checkInstanceName(v) !== pinnedName)
        throw new P2vError(
          'USAGE',
          `through this SSH key --block-map gives only the pinned machine's map; refused "${clip(w === '--block-map' ? `--block-map ${v}` : w)}"`,
          {
            hint: pinnedName
              ? `ask for --block-map ${pinnedName}`
              : "the stager admin pins --name NAME in this key's forced command to allow it (docs/admin-guide.md)",
          },
        );
      req.blockMap = v;
    } else if (HOUSEKEEPING.includes(w.split('=')[0]!)) {
      refuseHousekeeping(w);
    } else {
      refuse(w);
    }
  }
  for (const [key, words] of said) {
    const pins = PINNED_BY[key as keyof typeof PINNED_BY];
    const pin = pins?.find(([attribute]) => pinned(attribute));
    if (pin) refusePinned(pin[1], words);
  }
  return req;
}
