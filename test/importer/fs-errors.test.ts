/**
 * Filesystem errors in words (issue 13, item 6): a full, read-only, missing
 * or hijacked place gives a one-line error with the path, the cause and what
 * to do — never `internal error: ENOSPC` — and in the output phase it names
 * the verified staged copy that was kept. Conflicts known from the
 * descriptor are refused before the first disk byte. Full and read-only
 * filesystems are real small tmpfs mounts.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { P2vError } from '../../lib/errors.js';
import { fsError } from '../../importer/fs-errors.js';
import { cliArgv } from '../helpers/cli.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import { descriptorXml, MiB, runImport, sha256File, tarOva, toStreamOptimized } from './fixtures.js';

const NAME = 'test-vm';

/**
 * One 24 MiB disk with 16 MiB of incompressible data. `populatedSize` is
 * what the descriptor claims the disk holds (the space checks before data
 * go by it): a low claim gets a run past them to the real writes.
 */
async function makeOva(dir: string, populatedSize?: number): Promise<{ ova: string; raw: string }> {
  const raw = join(dir, 'src0.raw');
  const fh = await open(raw, 'w');
  await fh.truncate(24 * MiB);
  for (let off = 0; off < 16 * MiB; off += MiB) await fh.write(randomBytes(MiB), 0, MiB, 4 * MiB + off);
  await fh.close();
  await toStreamOptimized(raw, join(dir, 'disk1.vmdk'));
  let xml = descriptorXml({ name: NAME, disks: [{ href: 'disk1.vmdk', capacity: 24 * MiB }] });
  if (populatedSize !== undefined)
    xml = xml.replace(/ovf:capacity="(\d+)"/, `ovf:capacity="$1" ovf:populatedSize="${populatedSize}"`);
  await writeFile(join(dir, 'vm.ovf'), xml);
  const ova = join(dir, 'vm.ova');
  await tarOva(dir, ova, ['vm.ovf', 'disk1.vmdk'], 'vm.mf');
  return { ova, raw };
}

/** A tmpfs of `size` at `dir` for the body, unmounted afterwards. */
async function withTmpfs<T>(dir: string, opts: string, body: () => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true });
  await execa('mount', ['-t', 'tmpfs', '-o', opts, 'p2v-test', dir]);
  try {
    return await body();
  } finally {
    await execa('umount', [dir]);
  }
}

/**
 * Feed only the first `bytes` of the OVA and keep the pipe open: a run that
 * ends by itself refused before it needed the disk data.
 */
async function runOnHead(
  args: string[],
  ova: string,
  bytes: number,
): Promise<{ code: number | null; stderr: string; ms: number }> {
  const [node, script] = cliArgv('p2v-import');
  const head = (await readFile(ova)).subarray(0, bytes);
  const started = Date.now();
  const child = spawn(node!, [script!, ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.on('error', () => undefined);
  child.stdin.write(head);
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  clearTimeout(timer);
  child.stdin.destroy();
  return { code, stderr: stderr.replace(/\n$/, ''), ms: Date.now() - started };
}

/** The one committed staged import, whole. */
async function stagedCopyKept(staging: string, raw: string): Promise<string> {
  const ids = await readdir(staging);
  expect(ids).toHaveLength(1);
  expect(ids[0]).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{8}$/);
  await execa('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', raw, join(staging, ids[0]!, 'disk0.raw')]);
  return join(staging, ids[0]!);
}

describe('p2v-import filesystem errors', () => {
  for (const [kind, out, message] of [
    ['raw', (d: string) => ['--raw', d], (d: string) => `no space left on ${d}: 16.0 MiB needed, 8.0 MiB free`],
    ['qcow2', (d: string) => ['--qcow2', d], (d: string) => `no space left on ${d}: 17.0 MiB needed, 8.0 MiB free`],
    ['ova', (d: string) => ['--ova', join(d, 'x.ova')], (d: string) => `no space left on ${d}: 8.0 MiB free`],
    [
      'ganeti-export',
      (d: string) => ['--ganeti-export', d],
      (d: string) => `no space left on ${d}: 16.0 MiB needed, 8.0 MiB free`,
    ],
  ] as const) {
    it(`a full output place (--${kind}) says so with the figures and names the staged copy kept`, async () => {
      needRoot();
      await needPrograms('qemu-img', 'tar', 'mount');
      await withTmpDir('fserr', async (dir) => {
        const src = await makeOva(dir, MiB);
        const full = join(dir, 'full');
        const staging = join(dir, 'staging');
        await withTmpfs(full, 'size=8m', async () => {
          const r = await runImport(['--staging', staging, ...out(full)], { inputFile: src.ova });
          const kept = await stagedCopyKept(staging, src.raw);
          expect(r.stderr.split('\n')).toEqual([
            `p2v-import: ${message(full)}`,
            `p2v-import: hint: free space on ${full}, or choose another place; the verified import stays in ${kept}`,
          ]);
          expect(r.exitCode).toBe(1);
          // Nothing half-written is left, under any name.
          expect(await readdir(full)).toEqual([]);
        });
      });
    });
  }

  it('a full staging place says so, and leaves no partial import', async () => {
    needRoot();
    await needPrograms('qemu-img', 'tar', 'mount');
    await withTmpDir('fserr', async (dir) => {
      const src = await makeOva(dir, MiB);
      const staging = join(dir, 'staging');
      await withTmpfs(staging, 'size=8m', async () => {
        const r = await runImport(['--staging', staging, '--raw', join(dir, 'raw')], { inputFile: src.ova });
        expect(r.stderr.split('\n')).toEqual([
          `p2v-import: no space left on ${staging}: 8.0 MiB free`,
          `p2v-import: hint: free space on ${staging}, or choose another place`,
        ]);
        expect(r.exitCode).toBe(1);
        expect(await readdir(staging)).toEqual([]);
        expect(await readdir(join(dir, 'raw'))).toEqual([]);
      });
    });
  });

  it('refuses outputs that will not fit before the first disk byte', async () => {
    needRoot();
    await needPrograms('qemu-img', 'tar', 'mount');
    await withTmpDir('fserr', async (dir) => {
      const src = await makeOva(dir);
      const small = join(dir, 'small');
      const staging = join(dir, 'staging');
      await withTmpfs(small, 'size=8m', async () => {
        const r = await runOnHead(['--staging', staging, '--qcow2', small], src.ova, 64 * 1024);
        expect(r.stderr.split('\n')).toEqual([
          `p2v-import: not enough space on ${small} for the outputs: 25.0 MiB needed, 8.0 MiB free`,
          `p2v-import: hint: free space on ${small}, or write the outputs somewhere else`,
        ]);
        expect(r.code).toBe(3);
        expect(await readdir(staging)).toEqual([]);
        expect(await readdir(small)).toEqual([]);
      });
    });
  });

  it('refuses a read-only output place before the first disk byte', async () => {
    needRoot();
    await needPrograms('qemu-img', 'tar', 'mount');
    await withTmpDir('fserr', async (dir) => {
      const src = await makeOva(dir);
      const ro = join(dir, 'ro');
      const staging = join(dir, 'staging');
      await withTmpfs(ro, 'ro,size=8m', async () => {
        const r = await runOnHead(['--staging', staging, '--raw', ro], src.ova, 64 * 1024);
        expect(r.stderr.split('\n')).toEqual([
          `p2v-import: cannot write to ${ro}: it is on a read-only filesystem`,
          'p2v-import: hint: remount it read-write, or choose another place',
        ]);
        expect(r.code).toBe(1);
        expect(await readdir(staging)).toEqual([]);
        // A directory to create in it is refused at start-up, before reading at all.
        const sub = join(ro, 'sub');
        const r2 = await runOnHead(['--staging', staging, '--ganeti-export', sub], src.ova, 64 * 1024);
        expect(r2.stderr.split('\n')[0]).toBe(`p2v-import: cannot create ${sub}: ${ro} is on a read-only filesystem`);
        expect(r2.code).toBe(1);
        expect(await readdir(staging)).toEqual([]);
      });
    });
  });

  it('refuses a dangling symbolic link at exports/<name> before the first disk byte', async () => {
    needRoot();
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('fserr', async (dir) => {
      const src = await makeOva(dir);
      const exports = join(dir, 'exports');
      const staging = join(dir, 'staging');
      await mkdir(exports);
      await symlink(join(dir, 'nowhere', 'x'), join(exports, NAME));
      const r = await runOnHead(['--staging', staging, '--ganeti-export', exports], src.ova, 64 * 1024);
      expect(r.stderr.split('\n')).toEqual([
        `p2v-import: ${join(exports, NAME)} is a symbolic link; p2v-import never writes through one`,
        'p2v-import: hint: remove the link (someone may be redirecting the output), or give the real path',
      ]);
      expect(r.code).toBe(1);
      expect(await readdir(staging)).toEqual([]);
      expect((await lstat(join(exports, NAME))).isSymbolicLink()).toBe(true);
      await expect(lstat(join(dir, 'nowhere'))).rejects.toThrow(/ENOENT/);
    });
  });

  it('refuses an existing export name before the first disk byte, leaving it as it was', async () => {
    needRoot();
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('fserr', async (dir) => {
      const src = await makeOva(dir);
      const exports = join(dir, 'exports');
      const staging = join(dir, 'staging');
      await mkdir(join(exports, NAME), { recursive: true });
      await writeFile(join(exports, NAME, 'config.ini'), 'precious\n');
      const before = await sha256File(join(exports, NAME, 'config.ini'));
      // Only the descriptor and the first 64 KiB of the disk are ever sent, and the pipe stays open.
      const r = await runOnHead(['--staging', staging, '--ganeti-export', exports], src.ova, 64 * 1024);
      expect(r.stderr.split('\n')).toEqual([
        `p2v-import: ${join(exports, NAME)} already exists`,
        'p2v-import: hint: remove it, or choose another name with --name',
      ]);
      expect(r.code).toBe(1);
      expect(await readdir(staging)).toEqual([]);
      expect(await readdir(exports)).toEqual([NAME]);
      expect(await readdir(join(exports, NAME))).toEqual(['config.ini']);
      expect(await sha256File(join(exports, NAME, 'config.ini'))).toBe(before);
    });
  });

  it('says every errno a place can produce in words', () => {
    const errno = (code: string) => Object.assign(new Error(`${code}: whatever, open '/proc/self/fd/9/x'`), { code });
    const ctx = { path: '/srv/p2v/out/web1.ova', action: 'write' };
    const said = (code: string) => {
      const e = fsError(errno(code), ctx);
      expect(e).toBeInstanceOf(P2vError);
      const p = e as P2vError;
      expect(p.message).not.toMatch(/internal error|proc/);
      expect(p.message).toContain('/srv/p2v/out');
      expect(p.hint).toBeTruthy();
      return p.message;
    };
    expect(said('ENOSPC')).toBe('no space left on /srv/p2v/out');
    expect(said('EDQUOT')).toBe('disk quota exceeded on /srv/p2v/out');
    expect(said('EFBIG')).toBe('cannot write /srv/p2v/out/web1.ova: the file is too large for /srv/p2v/out');
    expect(said('EROFS')).toBe('cannot write /srv/p2v/out/web1.ova: /srv/p2v/out is on a read-only filesystem');
    expect(said('EACCES')).toBe('cannot write /srv/p2v/out/web1.ova: permission denied');
    expect(said('EPERM')).toBe('cannot write /srv/p2v/out/web1.ova: permission denied');
    expect(said('ENOENT')).toBe(
      'cannot write /srv/p2v/out/web1.ova: it or a directory on the way to it does not exist',
    );
    expect(said('ENOTDIR')).toBe('cannot write /srv/p2v/out/web1.ova: a part of the path is not a directory');
    expect(said('ELOOP')).toBe('/srv/p2v/out/web1.ova is a symbolic link; p2v-import never writes through one');
    expect(said('EEXIST')).toBe('/srv/p2v/out/web1.ova already exists');
    expect(said('EISDIR')).toBe('cannot write /srv/p2v/out/web1.ova: it is a directory');
    expect(said('EIO')).toBe('cannot write /srv/p2v/out/web1.ova: input/output error');
    expect(said('ESTALE')).toBe('cannot write /srv/p2v/out/web1.ova: whatever (ESTALE)');
    // Not an errno: left alone (a bug stays visible as one).
    const bug = new TypeError('x is undefined');
    expect(fsError(bug, ctx)).toBe(bug);
  });
});
