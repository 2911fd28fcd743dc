import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GuestTree, resolveGuestPath } from '../../guest/files.js';
import { isP2vError } from '../../lib/errors.js';
import { withTmpDir } from '../helpers/tmp.js';
import { writeTree } from '../fixups/guests.js';

/** A guest root at dir/root and, beside it, a "host" file the guest must never reach. */
async function hostileGuest(dir: string): Promise<{ root: string; secret: string }> {
  const root = join(dir, 'root');
  const secret = join(dir, 'host', 'etc', 'shadow');
  await mkdir(join(dir, 'host', 'etc'), { recursive: true });
  await writeFile(secret, 'root:HOST SECRET:19000::::::\n');
  await mkdir(join(root, 'etc'), { recursive: true });
  return { root, secret };
}

describe('guest paths resolve inside the guest root', () => {
  it('an absolute link to the host /etc/shadow is re-rooted in the guest', async () => {
    await withTmpDir('gf', async (dir) => {
      const { root, secret } = await hostileGuest(dir);
      await symlink(secret, join(root, 'etc', 'shadow-link'));
      await writeTree(root, { '/etc/shadow': 'root:guest:19000::::::\n' });
      await symlink('/etc/shadow', join(root, 'etc', 'abs'));
      expect(await resolveGuestPath(root, '/etc/shadow-link')).toBe(join(root, secret));
      expect(await resolveGuestPath(root, '/etc/abs')).toBe(join(root, 'etc/shadow'));
      const tree = new GuestTree(root);
      expect(await tree.read('/etc/shadow-link')).toBeNull();
      expect(await tree.read('/etc/abs')).toBe('root:guest:19000::::::\n');
    });
  });

  it('../../.. in a link or in the path is clamped at the guest root', async () => {
    await withTmpDir('gf', async (dir) => {
      const { root } = await hostileGuest(dir);
      await writeTree(root, {
        '/etc/alt': { symlink: '../../../../etc/real' },
        '/etc/real': 'inside\n',
        '/etc/hostname': { symlink: '/../../../host/etc/shadow' },
      });
      expect(await resolveGuestPath(root, '/etc/alt')).toBe(join(root, 'etc/real'));
      expect(await resolveGuestPath(root, '/../../../host/etc/shadow')).toBe(join(root, 'host/etc/shadow'));
      expect(await resolveGuestPath(root, '/etc/../../..')).toBe(root);
      const tree = new GuestTree(root);
      expect(await tree.read('/etc/alt')).toBe('inside\n');
      expect(await tree.read('/etc/hostname')).toBeNull();
      expect(await tree.read('/../host/etc/shadow')).toBeNull();
    });
  });

  it('a link to a directory outside the root is followed inside it', async () => {
    await withTmpDir('gf', async (dir) => {
      const { root } = await hostileGuest(dir);
      await symlink(join(dir, 'host', 'etc'), join(root, 'hostetc'));
      await symlink('../../host/etc', join(root, 'etc', 'rel'));
      const tree = new GuestTree(root);
      expect(await tree.list('/hostetc')).toEqual([]);
      expect(await tree.list('/etc/rel')).toEqual([]);
      expect(await tree.read('/hostetc/shadow')).toBeNull();
      expect(await tree.read('/etc/rel/shadow')).toBeNull();
      expect(await resolveGuestPath(root, '/hostetc/shadow')).toBe(join(root, dir, 'host/etc/shadow'));
      // The link itself, not followed, is what a fixup would replace.
      expect(await resolveGuestPath(root, '/hostetc', false)).toBe(join(root, 'hostetc'));
      expect(await tree.isSymlink('/hostetc')).toBe(true);
    });
  });

  it('a symlink loop is an INSPECTION error naming the path, for every reader', async () => {
    await withTmpDir('gf', async (root) => {
      await writeTree(root, {
        '/etc/a': { symlink: '/etc/b' },
        '/etc/b': { symlink: 'a' },
        '/self': { symlink: 'self' },
      });
      const tree = new GuestTree(root);
      for (const attempt of [
        () => resolveGuestPath(root, '/etc/a'),
        () => resolveGuestPath(root, '/self/x'),
        () => tree.read('/etc/a'),
        () => tree.exists('/etc/b'),
        () => tree.list('/self'),
      ]) {
        const e = await attempt().catch((x: unknown) => x);
        expect(isP2vError(e, 'INSPECTION')).toBe(true);
        expect((e as Error).message).toMatch(/^too many levels of symbolic links in the guest path \/(etc\/[ab]|self)/);
      }
      // The link itself is still there to see and to remove.
      expect(await tree.isSymlink('/etc/a')).toBe(true);
    });
  });

  it('a path that does not exist resolves literally under root', async () => {
    await withTmpDir('gf', async (root) => {
      await writeTree(root, { '/etc/link': { symlink: '/nonexistent/dir' } });
      expect(await resolveGuestPath(root, '/etc/link/file')).toBe(join(root, 'nonexistent/dir/file'));
      expect(await new GuestTree(root).exists('/etc/link/file')).toBe(false);
      expect(await readFile(join(root, 'etc/link'), 'utf8').catch(() => 'dangling')).toBe('dangling');
    });
  });
});
