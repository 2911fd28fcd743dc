import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ipConfig } from '../../fixups/ip-config.js';
import { applyFixups, planFixups } from '../../fixups/runner.js';
import { selinuxRelabel } from '../../fixups/selinux-relabel.js';
import { serialConsole } from '../../fixups/serial-console.js';
import { withTmpDir } from '../helpers/tmp.js';
import { changedPaths, context, rhelInspection, rhelTree, snapshot, writeTree } from './guests.js';

describe('selinux-relabel', () => {
  it('RHEL enforcing: a created keyfile asks for /.autorelabel; nothing once applied', async () => {
    await withTmpDir('se', async (root) => {
      await writeTree(root, rhelTree());
      const opts = { dhcp: true };
      const ctx = context(root, rhelInspection(), opts);
      const planned = await planFixups(ctx, [ipConfig, selinuxRelabel]);
      expect(planned.map((p) => p.fixup)).toEqual(['ip-config', 'selinux-relabel']);
      expect(planned[1]!.changes).toEqual([
        { kind: 'write', path: '/.autorelabel', before: null, after: '', mode: 0o644 },
      ]);
      const before = await snapshot(root);
      await applyFixups(ctx, planned);
      expect(changedPaths(before, await snapshot(root))).toContain('/.autorelabel');
      expect(await planFixups(context(root, rhelInspection(), opts), [ipConfig, selinuxRelabel])).toEqual([]);
    });
  });

  it('edits in place need no relabel; neither does a guest without SELinux', async () => {
    await withTmpDir('se', async (dir) => {
      const root = join(dir, 'a');
      await writeTree(root, rhelTree());
      await writeTree(root, {
        '/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service': {
          symlink: '/usr/lib/systemd/system/serial-getty@.service',
        },
      });
      const planned = await planFixups(context(root, rhelInspection()), [serialConsole, selinuxRelabel]);
      expect(planned.map((p) => p.fixup)).toEqual(['serial-console']);
      const other = join(dir, 'b');
      await writeTree(other, { ...rhelTree(), '/etc/selinux/config': 'SELINUX=disabled\n' });
      const p2 = await planFixups(context(other, rhelInspection(), { dhcp: true }), [ipConfig, selinuxRelabel]);
      expect(p2.map((p) => p.fixup)).toEqual(['ip-config']);
    });
  });
});
