import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GuestFiles } from '../../fixups/guest-files.js';
import { applyFixups } from '../../fixups/runner.js';
import { hostname } from '../../fixups/hostname.js';
import { withTmpDir } from '../helpers/tmp.js';
import { context, debianInspection, writeTree } from './guests.js';

describe('the fixups view of the guest', () => {
  it('planned changes are seen by later reads, lists and exists', async () => {
    await withTmpDir('gf', async (root) => {
      await writeTree(root, { '/etc/hostname': 'old\n', '/etc/gone': 'x\n' });
      const files = new GuestFiles(root);
      await files.record({ kind: 'write', path: '/etc/hostname', before: 'old\n', after: 'new\n' });
      await files.record({ kind: 'remove', path: '/etc/gone', before: 'x\n' });
      await files.record({ kind: 'write', path: '/etc/added', before: null, after: 'a\n' });
      expect(await files.read('/etc/hostname')).toBe('new\n');
      expect(await files.exists('/etc/gone')).toBe(false);
      expect(await files.list('/etc')).toEqual(['added', 'hostname']);
      expect(files.createsFiles).toBe(true);
    });
  });

  it('applying writes through a hostile /etc/hostname link lands inside root', async () => {
    await withTmpDir('gf', async (dir) => {
      const root = join(dir, 'root');
      const hostFile = join(dir, 'host', 'etc', 'hostname');
      await mkdir(join(dir, 'host', 'etc'), { recursive: true });
      await writeFile(hostFile, 'realhost\n');
      await writeTree(root, { '/etc/hosts': '127.0.0.1 localhost\n' });
      await symlink(hostFile, join(root, 'etc', 'hostname'));
      const ctx = context(root, debianInspection(), { hostname: 'newname' });
      const plan = await hostname.plan(ctx);
      await applyFixups(ctx, [plan]);
      expect(await readFile(hostFile, 'utf8')).toBe('realhost\n');
      expect(await readFile(join(root, dir.slice(1), 'host', 'etc', 'hostname'), 'utf8')).toBe('newname\n');
    });
  });
});
