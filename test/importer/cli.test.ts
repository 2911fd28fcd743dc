import { describe, expect, it } from 'vitest';
import { withTmpDir } from '../helpers/tmp.js';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { runImport } from './fixtures.js';

describe('p2v-import command line', () => {
  it('refuses bad usage with one line, a hint and status 2, before creating anything', async () => {
    await withTmpDir('cli', async (dir) => {
      const st = join(dir, 'staging');
      const cases: [string[], string, string][] = [
        [['--bogus'], "unknown option '--bogus'", 'see p2v-import --help'],
        [['a.ova', 'b.ova'], 'too many arguments. Expected 1 argument but got 2.', 'see p2v-import --help'],
        [['--disk-size', '12X'], 'invalid --disk-size "12X"', 'give a size such as 100G, 512M or a number of bytes'],
        [
          ['--name', 'Bad/Name'],
          'invalid instance name "Bad/Name"',
          'use a host name: lower-case letters, digits, "-" and "." (e.g. web1.example.org)',
        ],
        [['--nic-mode', 'weird'], 'invalid --nic-mode "weird"', 'use one of bridged, routed, openvswitch'],
        [['--os', 'a b'], 'invalid --os "a b"', 'give a Ganeti OS as NAME+VARIANT, e.g. p2v-image+default'],
        [
          [join(dir, 'missing.ova')],
          `cannot read ${join(dir, 'missing.ova')}: ENOENT: no such file or directory, open '${join(dir, 'missing.ova')}'`,
          'give an OVA file, or - for standard input',
        ],
      ];
      for (const [args, error, hint] of cases) {
        const r = await runImport(['--staging', st, ...args], { input: Buffer.alloc(0) });
        expect(r.stderr, args.join(' ')).toBe(`p2v-import: ${error}\np2v-import: hint: ${hint}`);
        expect(r.exitCode).toBe(2);
      }
      expect(await readdir(dir)).toEqual([]);
    });
  });
});
