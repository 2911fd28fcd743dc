import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GuestFiles, resolveInGuest } from '../../fixups/guest-files.js';
import { applyFixups } from '../../fixups/runner.js';
import { hostname } from '../../fixups/hostname.js';
import { isP2vError } from '../../lib/errors.js';
import { withTmpDir } from '../helpers/tmp.js';
import { context, debianInspection, writeTree } from './guests.js';

describe('guest paths resolve inside the guest root', () => {
  it('absolute and ../ symlinks stay under root', async () => {
    await withTmpDir('gf', async (dir) => {
      const root = join(dir, 'root');
      await writeTree(root, {
        '/etc/hostname': { symlink: '/../../../host/etc/hostname' },
        '/etc/alt': { symlink: '../../../../etc/real' },
        '/etc/real': 'inside\n',
        '/usr/lib/os-release': 'ID=debian\n',
        '/etc/os-release': { symlink: '../usr/lib/os-release' },
      });
      await mkdir(join(dir, 'host', 'etc'), { recursive: true });
      await writeFile(join(dir, 'host', 'etc', 'hostname'), 'HOST MUST NOT BE READ\n');
      expect(await resolveInGuest(root, '/etc/hostname')).toBe(join(root, 'host/etc/hostname'));
      expect(await resolveInGuest(root, '/etc/alt')).toBe(join(root, 'etc/real'));
      expect(await resolveInGuest(root, '/etc/hostname', false)).toBe(join(root, 'etc/hostname'));
      const files = new GuestFiles(root);
      expect(await files.read('/etc/hostname')).toBeNull();
      expect(await files.read('/etc/alt')).toBe('inside\n');
      expect(await files.read('/etc/os-release')).toBe('ID=debian\n');
    });
  });

  it('a symlink loop is a FIXUP error, not a hang', async () => {
    await withTmpDir('gf', async (root) => {
      await writeTree(root, { '/etc/a': { symlink: '/etc/b' }, '/etc/b': { symlink: 'a' } });
      const e = await resolveInGuest(root, '/etc/a').catch((x: unknown) => x);
      expect(isP2vError(e, 'FIXUP')).toBe(true);
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
