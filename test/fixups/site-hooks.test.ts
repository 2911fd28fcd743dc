import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyFixups, planFixups, renderDryRun } from '../../fixups/runner.js';
import { siteHooks } from '../../fixups/site-hooks.js';
import { isP2vError } from '../../lib/errors.js';
import { withTmpDir } from '../helpers/tmp.js';
import { context, debianInspection, writeTree } from './guests.js';

describe('site-hooks', () => {
  it('runs executables in name order with the guest and the inspection, logging their output', async () => {
    await withTmpDir('hooks', async (dir) => {
      const root = join(dir, 'root');
      const hooks = join(dir, 'hooks');
      await writeTree(root, { '/etc/motd': 'old\n' });
      await writeTree(hooks, {
        '/20-motd': {
          mode: 0o755,
          text: '#!/bin/sh\nset -e\necho "hello from $P2V_HYPERVISOR"\necho "Ganeti instance" > "$P2V_GUEST_ROOT/etc/motd"\ngrep -q \'"guestDisk": "sda"\' "$P2V_INSPECTION"\necho warn-line >&2\n',
        },
        '/10-first': { mode: 0o755, text: '#!/bin/sh\necho first\n' },
        '/README': 'not a hook\n',
        '/30-disabled': { mode: 0o644, text: '#!/bin/sh\nexit 1\n' },
      });
      const ctx = context(root, debianInspection(), { hooksDir: hooks, hypervisor: 'xen-hvm' });
      const planned = await planFixups(ctx, [siteHooks]);
      expect(planned).toEqual([
        {
          fixup: 'site-hooks',
          summary: ['ran site hook 10-first', 'ran site hook 20-motd'],
          changes: [
            { kind: 'hook', path: join(hooks, '10-first'), reason: 'site hook 10-first' },
            { kind: 'hook', path: join(hooks, '20-motd'), reason: 'site hook 20-motd' },
          ],
        },
      ]);
      expect(renderDryRun(planned)).toBe(
        `# site-hooks\nhook: ${join(hooks, '10-first')}  # site hook 10-first\nhook: ${join(hooks, '20-motd')}  # site hook 20-motd\n`,
      );
      expect(ctx.log.lines).toEqual([
        `p2v-export: warning: site hook ${join(hooks, '30-disabled')} is not an executable file: skipped`,
        `p2v-export: warning: site hook ${join(hooks, 'README')} is not an executable file: skipped`,
      ]);
      ctx.log.lines.length = 0;
      await applyFixups(ctx, planned);
      expect(await readFile(join(root, 'etc/motd'), 'utf8')).toBe('Ganeti instance\n');
      expect(ctx.log.lines).toEqual([
        `p2v-export: site-hooks: running ${join(hooks, '10-first')}`,
        'p2v-export: hook 10-first: first',
        'p2v-export: site-hooks: ran 10-first',
        `p2v-export: site-hooks: running ${join(hooks, '20-motd')}`,
        'p2v-export: hook 20-motd: hello from xen-hvm',
        'p2v-export: warning: hook 20-motd: warn-line',
        'p2v-export: site-hooks: ran 20-motd',
      ]);
    });
  });

  it('a failing hook aborts with HOOK_FAILED naming it; later hooks do not run', async () => {
    await withTmpDir('hooks', async (dir) => {
      const hooks = join(dir, 'hooks');
      await writeTree(hooks, {
        '/10-fail': { mode: 0o755, text: '#!/bin/sh\necho cannot >&2\nexit 3\n' },
        '/20-after': { mode: 0o755, text: `#!/bin/sh\ntouch ${dir}/after-ran\n` },
      });
      const ctx = context(join(dir), debianInspection(), { hooksDir: hooks });
      const planned = await planFixups(ctx, [siteHooks]);
      const e = await applyFixups(ctx, planned).catch((x: unknown) => x);
      expect(isP2vError(e, 'HOOK_FAILED')).toBe(true);
      expect((e as Error).message).toBe('site hook 10-fail failed (exit status 3)');
      await expect(readFile(join(dir, 'after-ran'))).rejects.toThrow();
    });
  });

  it('a missing hooks directory is a usage error', async () => {
    await withTmpDir('hooks', async (dir) => {
      const e = await siteHooks
        .plan(context(dir, debianInspection(), { hooksDir: join(dir, 'nope') }))
        .catch((x: unknown) => x);
      expect(isP2vError(e, 'USAGE')).toBe(true);
    });
  });
});
