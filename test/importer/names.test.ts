import { describe, expect, it } from 'vitest';
import { chooseInstanceName } from '../../importer/instance-name.js';
import { checkInstanceName, isValidInstanceName, sanitiseInstanceName } from '../../lib/instance-name.js';
import { parseClientCommand } from '../../importer/forced-command.js';
import { parseSize, toMiBRoundedUp } from '../../importer/size.js';
import { isP2vError } from '../../lib/errors.js';

describe('instance names', () => {
  it('sanitises names from the stream to Ganeti host names', () => {
    expect(sanitiseInstanceName('Web Server #1')).toBe('web-server-1');
    expect(sanitiseInstanceName('../../etc/passwd')).toBe('etc-passwd');
    expect(sanitiseInstanceName('/abs/path')).toBe('abs-path');
    expect(sanitiseInstanceName('db1.Example.ORG')).toBe('db1.example.org');
    expect(sanitiseInstanceName('..')).toBeUndefined();
    expect(sanitiseInstanceName('---')).toBeUndefined();
    expect(sanitiseInstanceName('a'.repeat(100))).toBe('a'.repeat(63));
    for (const s of ['x/../../y', 'a\0b', 'é-ü', '%00', '.hidden', 'a..b']) {
      const n = sanitiseInstanceName(s);
      if (n !== undefined) {
        expect(isValidInstanceName(n)).toBe(true);
        expect(n).not.toMatch(/[/\0%]|\.\.|^\./);
      }
    }
  });

  it('checks --name without rewriting it', () => {
    expect(checkInstanceName('web1.example.org')).toBe('web1.example.org');
    for (const bad of ['../x', 'Web1', 'a/b', '', '-a', 'a_b']) {
      expect(() => checkInstanceName(bad)).toThrow(/invalid instance name/);
    }
  });

  it('prefers --name, then the Ganeti name, then the VirtualSystem name', () => {
    expect(chooseInstanceName('given', ['gnt', 'vs'])).toBe('given');
    expect(chooseInstanceName(undefined, [undefined, 'VS Name'])).toBe('vs-name');
    expect(() => chooseInstanceName(undefined, ['///', undefined])).toThrow(/no usable instance name/);
  });
});

describe('SSH_ORIGINAL_COMMAND allow-list', () => {
  it('takes --name, --verbose, --quiet and an optional leading p2v-import', () => {
    expect(parseClientCommand('')).toEqual({});
    expect(parseClientCommand('p2v-import --name web1 -v')).toEqual({ name: 'web1', verbose: true });
    expect(parseClientCommand('/usr/bin/p2v-import --name=db2 --quiet')).toEqual({ name: 'db2', quiet: true });
  });

  it('refuses everything else', () => {
    for (const cmd of [
      'p2v-import --staging /tmp',
      'p2v-import --ganeti-export /etc',
      'rm -rf /',
      'sh -c id',
      'p2v-import --name ../../etc',
      'p2v-import /etc/shadow',
      'p2v-import --name',
      'p2v-import --name a;id',
    ]) {
      let err: unknown;
      try {
        parseClientCommand(cmd);
      } catch (e) {
        err = e;
      }
      expect(isP2vError(err, 'USAGE'), cmd).toBe(true);
    }
  });
});

describe('sizes', () => {
  it('parses binary suffixes and rounds MiB up', () => {
    expect(parseSize('100G')).toBe(100 * 2 ** 30);
    expect(parseSize('512M')).toBe(512 * 2 ** 20);
    expect(parseSize('1.5GiB')).toBe(1.5 * 2 ** 30);
    expect(parseSize('4096')).toBe(4096);
    expect(() => parseSize('-1G')).toThrow(/invalid size/);
    expect(() => parseSize('lots')).toThrow(/invalid size/);
    expect(toMiBRoundedUp(2 ** 20)).toBe(1);
    expect(toMiBRoundedUp(2 ** 20 + 1)).toBe(2);
  });
});
