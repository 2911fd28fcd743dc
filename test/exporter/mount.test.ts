import { describe, expect, it } from 'vitest';
import { mkdir, open, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../helpers/cli.js';
import { execa } from 'execa';
import { attachPartition, exposeOverlay } from '../../exporter/disk-files.js';
import { mountGuest, type GuestMount } from '../../exporter/mount.js';
import { resolveGuestPath } from '../../guest/files.js';
import { isP2vError } from '../../lib/errors.js';
import { inspect } from '../../exporter/inspect.js';
import type { Inspection } from '../../guest/types.js';
import { pendingExitActions } from '../../lib/exit-actions.js';
import { memoryLogger } from '../../lib/log.js';
import { buildSampleDisk } from '../../lib/sample-disk.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import {
  expectNoLeftovers,
  leftoversAboveFuse,
  overlayAndExpose,
  sha256,
  MOUNT_PATH_PROGRAMS,
} from './mount-fixture.js';

const MACHINE: Inspection['machine'] = { cpus: 1, memoryMiB: 1024, nics: [] };
const PROGRAMS = [...MOUNT_PATH_PROGRAMS, 'umount', 'e2fsck'];

describe('mount path', () => {
  it('mounts the guest as its fstab says, takes writes in the overlay only, and cleans up', async () => {
    needRoot();
    await needPrograms(...PROGRAMS);
    await withTmpDir('mount', async (dir) => {
      const path = join(dir, 'disk.img');
      const s = await buildSampleDisk({ path, sizeMiB: 128, swapMiB: 8, bootMiB: 24, fillerMiB: 2, fstab: 'label' });
      const before = await sha256(path);
      const x = await overlayAndExpose(path, dir);
      try {
        const i = await inspect([{ source: path, exposed: x.disk, size: x.size }], {
          workDir: dir,
          machine: MACHINE,
          log: memoryLogger(),
        });
        const gm = await mountGuest(i, [x.disk], dir, { warn: console.warn });
        try {
          expect(gm.mounts.map((m) => [m.guestPath, m.fsType])).toEqual([
            ['/', 'ext4'],
            ['/boot', 'ext4'],
          ]);
          expect(gm.mounts[1]!.mountpoint).toBe(join(gm.root, 'boot'));
          for (const f of s.liveFiles) {
            const digest = createHash('sha256')
              .update(await readFile(join(gm.root, f)))
              .digest('hex');
            expect(digest, f).toBe(s.liveFileDigests[f]);
          }
          expect(await readFile(join(gm.root, 'etc/hostname'), 'utf8')).toBe('p2v-sample\n');
          await writeFile(join(gm.root, 'etc/p2v-was-here'), 'converted\n');
          await writeFile(join(gm.root, 'boot/p2v-was-here'), 'converted\n');
        } finally {
          await gm.unmountAll();
        }
        // The writes are in the overlay: mount again and read them back.
        const again = await mountGuest(i, [x.disk], dir, { readOnly: true, warn: console.warn });
        try {
          expect(await readFile(join(again.root, 'etc/p2v-was-here'), 'utf8')).toBe('converted\n');
          expect(await readFile(join(again.root, 'boot/p2v-was-here'), 'utf8')).toBe('converted\n');
        } finally {
          await again.unmountAll();
        }
        // The filesystem is clean after our unmount.
        const part = await attachPartition(x.disk.path, s.rootOffset, s.rootSize, { readOnly: true });
        try {
          const fsck = await execa('e2fsck', ['-fn', part.device], { reject: false });
          expect(fsck.exitCode, String(fsck.stdout)).toBe(0);
          // The leak check does see a loop device on the FUSE file.
          expect(await leftoversAboveFuse(dir)).toEqual([expect.stringMatching(new RegExp(`^loop: ${part.device}:`))]);
        } finally {
          await part.detach();
        }
        expect(await leftoversAboveFuse(dir)).toEqual([]);
      } finally {
        await x.close();
      }
      expect(await sha256(path)).toBe(before);
      await expectNoLeftovers(dir);
      expect(pendingExitActions().filter((a) => a.includes(dir))).toEqual([]);
    });
  });

  it('undoes every step when a mount fails half-way (corrupt /boot)', async () => {
    needRoot();
    await needPrograms(...PROGRAMS);
    await withTmpDir('mount', async (dir) => {
      const path = join(dir, 'disk.img');
      const s = await buildSampleDisk({ path, sizeMiB: 96, swapMiB: 8, bootMiB: 16, fillerMiB: 0 });
      const x = await overlayAndExpose(path, dir);
      try {
        const i = await inspect([{ source: path, exposed: x.disk, size: x.size }], {
          workDir: dir,
          machine: MACHINE,
          log: memoryLogger(),
        });
        // Corrupt /boot's group descriptors in the overlay after inspection: / mounts, then /boot fails.
        const fh = await open(x.disk.path, 'r+');
        await fh.write(Buffer.alloc(4096), 0, 4096, s.boot!.offset + 4096);
        await fh.close();
        let gm: GuestMount | undefined;
        await expect(
          mountGuest(i, [x.disk], dir, { warn: console.warn }).then((g) => {
            gm = g;
          }),
        ).rejects.toMatchObject({ code: 'COMMAND_FAILED' });
        expect(gm).toBeUndefined();
        expect(await leftoversAboveFuse(dir)).toEqual([]);
      } finally {
        await x.close();
      }
      await expectNoLeftovers(dir);
    });
  });

  it('tears everything down when the exporter is killed with SIGTERM while the guest is mounted', async () => {
    needRoot();
    await needPrograms(...PROGRAMS);
    await withTmpDir('mount', async (dir) => {
      // The built modules (dist/, made by the test global setup) run in a child we can signal.
      const dist = (m: string) => JSON.stringify(pathToFileURL(join(ROOT, 'dist', m)).href);
      const script = `
        import { buildSampleDisk } from ${dist('lib/sample-disk.js')};
        import { openOverlay } from ${dist('exporter/overlay.js')};
        import { exposeOverlay } from ${dist('exporter/disk-files.js')};
        import { mountGuest } from ${dist('exporter/mount.js')};
        import { inspect } from ${dist('exporter/inspect.js')};
        import { memoryLogger } from ${dist('lib/log.js')};
        const dir = process.argv[1];
        const path = dir + '/disk.img';
        await buildSampleDisk({ path, sizeMiB: 96, swapMiB: 8, bootMiB: 16, fillerMiB: 0 });
        const ov = await openOverlay(path, { workDir: dir });
        const disk = await exposeOverlay(ov, dir);
        const machine = { cpus: 1, memoryMiB: 1, nics: [] };
        const i = await inspect([{ source: path, exposed: disk, size: 96 << 20 }], { workDir: dir, machine, log: memoryLogger() });
        const gm = await mountGuest(i, [disk], dir, { warn: console.warn });
        process.stdout.write('mounted ' + gm.mounts.length + '\\n');
        setInterval(() => undefined, 1000);
      `;
      const child = execa(process.execPath, ['--input-type=module', '-e', script, dir], {
        reject: false,
        cleanup: false,
      });
      try {
        const ready = await new Promise<string>((resolve, reject) => {
          let out = '';
          child.stdout!.on('data', (b: Buffer) => {
            out += b.toString();
            if (out.endsWith('\n')) resolve(out);
          });
          void child.then((r) => reject(new Error(`child exited early: ${String(r.stderr)}`)));
        });
        expect(ready).toBe('mounted 2\n');
        expect(await leftoversAboveFuse(dir), 'two loop devices and two mounts').toHaveLength(4);
      } finally {
        child.kill('SIGTERM');
      }
      const r = await child;
      expect(r.exitCode, String(r.stderr)).toBe(143);
      await expectNoLeftovers(dir);
    });
  });

  it('fails cleanly when nbdfuse cannot reach the overlay', async () => {
    needRoot();
    await needPrograms('nbdfuse', 'fusermount3');
    await withTmpDir('mount', async (dir) => {
      const overlay = { source: 'x', socket: join(dir, 'no-such.sock'), uri: '', close: async () => undefined };
      await expect(exposeOverlay(overlay, dir)).rejects.toMatchObject({
        code: 'COMMAND_FAILED',
        message: 'nbdfuse exited before exposing the overlay',
      });
      await expectNoLeftovers(dir);
      expect(await readdir(dir)).toEqual([]);
    });
  });

  it('resolves guest paths through symlinks without leaving the guest root', async () => {
    await withTmpDir('mount', async (root) => {
      await mkdir(join(root, 'usr/lib'), { recursive: true });
      await writeFile(join(root, 'usr/lib/os-release'), 'ID=x\n');
      await symlink('usr/lib', join(root, 'lib'));
      await mkdir(join(root, 'etc'));
      await symlink('../usr/lib/os-release', join(root, 'etc/os-release'));
      await symlink('/etc/shadow', join(root, 'etc/evil'));
      await symlink('../../../../../../etc/passwd', join(root, 'etc/evil2'));
      await symlink('loop', join(root, 'loop'));
      // One rule with the fixups (guest/files.ts): links re-rooted, `..` clamped, a loop is an error.
      expect(await resolveGuestPath(root, '/etc/os-release')).toBe(join(root, 'usr/lib/os-release'));
      expect(await resolveGuestPath(root, '/lib/os-release')).toBe(join(root, 'usr/lib/os-release'));
      expect(await resolveGuestPath(root, '/etc/evil')).toBe(join(root, 'etc/shadow'));
      expect(await resolveGuestPath(root, '/etc/evil2')).toBe(join(root, 'etc/passwd'));
      expect(isP2vError(await resolveGuestPath(root, '/loop').catch((e: unknown) => e), 'INSPECTION')).toBe(true);
      expect(await resolveGuestPath(root, '/etc/../usr/lib')).toBe(join(root, 'usr/lib'));
    });
  });
});
