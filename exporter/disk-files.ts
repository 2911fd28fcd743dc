/**
 * The overlay as host files and loop devices, without nbd or device-mapper
 * kernel modules: the layers every guest access stands on.
 *
 *   overlay socket ──nbdfuse──▶ DIR/disk (a host file) ──losetup -o/--sizelimit──▶ /dev/loopN
 *
 * Each layer is registered with lib/exit-actions the moment it exists, so an
 * error or a signal at any step leaves no loop device or nbdfuse behind.
 * exporter/mount.ts mounts filesystems on these devices; exporter/lvm/attach.ts
 * builds LV devices from them.
 *
 *   exposeOverlay(overlay, workDir): Promise<ExposedDisk>
 *   attachPartition(diskFile, offset, size, { readOnly }): Promise<AttachedPartition>
 *   unmountDir(dir, program)        umount with retries, lazily as a last resort
 *
 * nbdfuse is started with lib/run's startProgram: it runs beside us for the
 * whole export.
 */
import { access, mkdir, mkdtemp, readFile, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { onExit, type ExitHandle } from '../lib/exit-actions.js';
import { waitForPidfile } from '../lib/pidfile.js';
import { requireProgram, run, runText, startProgram } from '../lib/run.js';
import type { Overlay } from './overlay.js';

export interface ExposedDisk {
  /** The disk as a host file. */
  path: string;
  /** FUSE-unmount and remove the directory (idempotent). */
  close(): Promise<void>;
}

export interface AttachedPartition {
  /** /dev/loopN */
  device: string;
  offset: number;
  size: number;
  detach(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Is `dir` a mount point right now? (/proc/self/mountinfo, field 5) */
export async function isMountPoint(dir: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => unescapeMountinfo(l.split(' ')[4] ?? '') === dir);
}

export function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** umount, retrying while the fs is busy, then lazily as a last resort. */
export async function unmountDir(dir: string, program: 'umount' | 'fusermount3' = 'umount'): Promise<void> {
  const args = program === 'umount' ? [dir] : ['-u', dir];
  for (let attempt = 0; attempt < 5; attempt++) {
    if (!(await isMountPoint(dir))) return;
    const r = await run(program, args, { allowFailure: true });
    if (r.exitCode === 0) return;
    await sleep(100 * (attempt + 1));
  }
  if (!(await isMountPoint(dir))) return;
  await run(program, program === 'umount' ? ['-l', dir] : ['-u', '-z', dir], { what: `unmounting ${dir}` });
}

/** Expose the overlay as a host file with nbdfuse: DIR/disk. */
export async function exposeOverlay(overlay: Overlay, workDir: string): Promise<ExposedDisk> {
  await requireProgram('nbdfuse');
  await requireProgram('fusermount3');
  const dir = await mkdtemp(join(workDir, 'p2v-fuse-'));
  const mnt = join(dir, 'mnt');
  await mkdir(mnt);
  const pidfile = join(dir, 'nbdfuse.pid');
  const removeDir: ExitHandle = onExit(`remove ${dir}`, async () => {
    // rmdir, never rm -r: if the unmount failed, the overlay must not be emptied through it.
    await rmdir(mnt).catch(() => undefined);
    await unlink(pidfile).catch(() => undefined);
    await rmdir(dir).catch(() => undefined);
  });
  const { child } = await startProgram('nbdfuse', ['-P', pidfile, join(mnt, 'disk'), '--unix', overlay.socket], {
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'pipe',
    buffer: { stderr: true },
    // Not execa's own kill-on-signal: nbdfuse must outlive the loop devices and mounts above it, and our
    // exit action (fusermount3 -u) ends it in the right order.
    cleanup: false,
  });
  child.catch(() => undefined);
  const stop: ExitHandle = onExit(`fuse-unmount ${mnt}`, async () => {
    if (child.exitCode === null) {
      // nbdfuse exits by itself once its mount point is unmounted (it must not be killed first).
      await unmountDir(mnt, 'fusermount3').catch(() => undefined);
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await child.catch(() => undefined);
      clearTimeout(t);
    }
    await unmountDir(mnt, 'fusermount3');
  });
  try {
    await waitForPidfile(pidfile, child, {
      program: 'nbdfuse',
      readiness: 'exposing the overlay',
      timeoutMs: 15_000,
      hint: 'check that FUSE works here (modprobe fuse; apt-get install fuse3 nbdfuse)',
    });
    await access(join(mnt, 'disk'));
  } catch (e) {
    await stop.run();
    await removeDir.run();
    throw e;
  }
  let closed = false;
  return {
    path: join(mnt, 'disk'),
    async close() {
      if (closed) return;
      closed = true;
      await stop.run();
      await removeDir.run();
    },
  };
}

async function detachLoop(dev: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = await run('losetup', ['-d', dev], { allowFailure: true });
    if (r.exitCode === 0) return;
    // Already gone (someone else detached it, or autoclear): nothing to do.
    const st = await run('losetup', [dev], { allowFailure: true });
    if (st.exitCode !== 0) return;
    await sleep(100 * (attempt + 1));
  }
  await run('losetup', ['-d', dev], { what: `detaching ${dev}` });
}

/** Attach bytes [offset, offset+size) of a disk file to a loop device. */
export async function attachPartition(
  diskFile: string,
  offset: number,
  size: number,
  opts: { readOnly?: boolean } = {},
): Promise<AttachedPartition> {
  const args = [
    '--find',
    '--show',
    '-o',
    String(offset),
    '--sizelimit',
    String(size),
    ...(opts.readOnly ? ['--read-only'] : []),
    diskFile,
  ];
  const device = await runText('losetup', args, { what: `attaching ${diskFile} at offset ${offset}` });
  const h = onExit(`detach ${device}`, () => detachLoop(device));
  return { device, offset, size, detach: () => h.run() };
}
