/**
 * The p2v-image OS scripts run by dash (Debian's /bin/sh) with the
 * environment Ganeti 3.0 gives them, on small synthetic disks: files, and a
 * loop block device for the block path. The cluster test proves the same
 * scripts under a real Ganeti; these cover the edge cases quickly.
 */
import { describe, expect, it } from 'vitest';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { OS_FILES, shippedDefinitionDir } from '../../ganeti-os/definition.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import { writeSparseImage } from '../helpers/sparse-image.js';

const MiB = 1024 * 1024;
const OS_DIR = shippedDefinitionDir();
const PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

interface ScriptResult {
  exitCode: number;
  stdout: Buffer;
  stderr: string;
}

/** Run one OS script under dash with only the given environment (plus PATH). */
async function runScript(
  script: string,
  env: Record<string, string>,
  opts: { inputFile?: string; args?: string[] } = {},
): Promise<ScriptResult> {
  const r = await execa('dash', [join(OS_DIR, script), ...(opts.args ?? [])], {
    env: { PATH, ...env },
    extendEnv: false,
    reject: false,
    encoding: 'buffer',
    ...(opts.inputFile ? { inputFile: opts.inputFile } : { stdin: 'ignore' as const }),
  });
  return { exitCode: r.exitCode ?? -1, stdout: Buffer.from(r.stdout), stderr: Buffer.from(r.stderr).toString() };
}

const api = { OS_API_VERSION: '20', OS_NAME: 'p2v-image', OS_VARIANT: 'default', INSTANCE_NAME: 'vm1.example' };

/** A sparse file of `size` bytes with random (never all-zero) data at `pieces`. */
async function sparseImage(path: string, size: number, pieces: [number, number][]): Promise<Buffer> {
  await writeSparseImage(path, size, pieces);
  return readFile(path);
}

/** A file that reads as garbage everywhere: what stale storage looks like. */
async function garbageFile(path: string, size: number): Promise<void> {
  await writeFile(path, Buffer.alloc(size, 0xa5));
}

/** Bytes actually allocated on disk for a file. */
async function allocated(path: string): Promise<number> {
  return (await stat(path)).blocks * 512;
}

function expectZero(buf: Buffer, what: string): void {
  const i = buf.findIndex((b) => b !== 0);
  expect(i, `${what}: first non-zero byte`).toBe(-1);
}

describe('p2v-image OS definition files', () => {
  it('has exactly the files of OS API 20 plus common.sh, scripts in POSIX sh that dash parses', async () => {
    await needPrograms('dash');
    const names = (await readdir(OS_DIR)).sort();
    expect(names).toEqual(OS_FILES.map((f) => f.name).sort());
    expect((await readFile(join(OS_DIR, 'ganeti_api_version'), 'utf8')).trim()).toBe('20');
    expect((await readFile(join(OS_DIR, 'variants.list'), 'utf8')).trim().split('\n')).toEqual(['default']);
    const params = (await readFile(join(OS_DIR, 'parameters.list'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/)[0]);
    expect(params).toEqual(['image', 'image_format']);
    for (const f of OS_FILES) {
      const text = await readFile(join(OS_DIR, f.name), 'utf8');
      if (f.mode & 0o111) {
        expect(text.startsWith('#!/bin/sh\n'), `${f.name} shebang`).toBe(true);
        expect(text, `${f.name} strictness`).toMatch(/^set -eu$/m);
      }
      if (f.mode & 0o111 || f.name.endsWith('.sh')) {
        const r = await execa('dash', ['-n', join(OS_DIR, f.name)], { reject: false });
        expect(r.stderr, `${f.name} syntax`).toBe('');
        expect(r.exitCode).toBe(0);
        // bash-only constructs that dash would only trip on at run time
        expect(text, `${f.name} bashisms`).not.toMatch(
          /\[\[|^\s*function\s+\w+|^\s*local\s|\$\{\w+\[|<<<|\bpipefail\b|\$'/m,
        );
      }
    }
  });

  it('prints usage for --help and refuses arguments Ganeti never passes', async () => {
    for (const s of ['create', 'import', 'export', 'rename', 'verify']) {
      const help = await runScript(s, {}, { args: ['--help'] });
      expect(help.exitCode, s).toBe(0);
      expect(help.stdout.toString()).toMatch(new RegExp(`^usage: ${s} `));
    }
    const extra = await runScript('rename', api, { args: ['surplus'] });
    expect(extra.exitCode).toBe(2);
    expect(extra.stderr).toMatch(/usage: rename/);
    const verifyWrong = await runScript('verify', api, { args: ['bogus'] });
    expect(verifyWrong.exitCode).toBe(2);
  });

  it('refuses to run outside Ganeti or with another API version or variant', async () => {
    const noApi = await runScript('import', { IMPORT_INDEX: '0', IMPORT_DEVICE: '/nonexistent' });
    expect(noApi.exitCode).toBe(1);
    expect(noApi.stderr).toMatch(/OS_API_VERSION is not set/);
    expect(noApi.stderr).toMatch(/hint: this script is run by Ganeti/);
    const v15 = await runScript('rename', { ...api, OS_API_VERSION: '15' });
    expect(v15.exitCode).toBe(1);
    expect(v15.stderr).toMatch(/OS API version '15' is not supported/);
    const variant = await runScript('rename', { ...api, OS_VARIANT: 'fancy' });
    expect(variant.exitCode).toBe(1);
    expect(variant.stderr).toMatch(/unknown variant 'fancy'/);
  });
});

describe('import', () => {
  it('writes the dump onto a file disk byte for byte, keeps holes, never changes its size', async () => {
    await withTmpDir('gos-import', async (dir) => {
      const size = 8 * MiB;
      const dump = await sparseImage(join(dir, 'dump'), size, [
        [0, 4096],
        [MiB + 123, 70_000],
        [5 * MiB, MiB],
        [size - 512, 512],
      ]);
      const disk = join(dir, 'disk0');
      await garbageFile(disk, size); // stale bytes must not survive under the dump's zeros
      const r = await runScript(
        'import',
        { ...api, IMPORT_INDEX: '0', IMPORT_DEVICE: disk, IMPORT_DISK_PATH: disk },
        { inputFile: join(dir, 'dump') },
      );
      expect(r.stderr).toMatch(/disk 0: imported 8 MiB/);
      expect(r.exitCode).toBe(0);
      expect(r.stdout.length).toBe(0);
      expect((await stat(disk)).size).toBe(size);
      expect((await readFile(disk)).equals(dump)).toBe(true);
      // 1.1 MiB of data in 64 KiB blocks: a few blocks more at most, never the whole 8 MiB
      const used = await allocated(disk);
      expect(used).toBeGreaterThanOrEqual(MiB);
      expect(used).toBeLessThan(2 * MiB);
    });
  });

  it('takes a dump shorter than the disk; the rest reads as zeros', async () => {
    await withTmpDir('gos-import', async (dir) => {
      const dump = await sparseImage(join(dir, 'dump'), 3 * MiB + 512, [[2 * MiB, MiB + 512]]);
      const disk = join(dir, 'disk1');
      await garbageFile(disk, 6 * MiB);
      const r = await runScript(
        'import',
        { ...api, IMPORT_INDEX: '1', IMPORT_DEVICE: disk },
        { inputFile: join(dir, 'dump') },
      );
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toMatch(
        /disk 1: the dump \(3146240 bytes\) is shorter than the disk; the last 3145216 bytes read as zeros/,
      );
      const got = await readFile(disk);
      expect(got.length).toBe(6 * MiB);
      expect(got.subarray(0, dump.length).equals(dump)).toBe(true);
      expectZero(got.subarray(dump.length), 'beyond the dump');
    });
  });

  it('fails loudly on a dump larger than the disk and never extends a file disk', async () => {
    await withTmpDir('gos-import', async (dir) => {
      await sparseImage(join(dir, 'dump'), 4 * MiB + 1, [[4 * MiB, 1]]);
      const disk = join(dir, 'disk0');
      await sparseImage(disk, 4 * MiB, []);
      const r = await runScript(
        'import',
        { ...api, IMPORT_INDEX: '0', IMPORT_DEVICE: disk },
        { inputFile: join(dir, 'dump') },
      );
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/error: disk 0: the dump is larger than the disk \(4 MiB\)/);
      expect(r.stderr).toMatch(/hint: .*--disk 0:size=/);
      expect((await stat(disk)).size).toBe(4 * MiB);
    });
  });

  it('fails on an empty dump, a missing disk and a bad index', async () => {
    await withTmpDir('gos-import', async (dir) => {
      const disk = join(dir, 'disk0');
      await sparseImage(disk, MiB, []);
      await writeFile(join(dir, 'empty'), '');
      const empty = await runScript(
        'import',
        { ...api, IMPORT_INDEX: '0', IMPORT_DEVICE: disk },
        { inputFile: join(dir, 'empty') },
      );
      expect(empty.exitCode).toBe(1);
      expect(empty.stderr).toMatch(/disk 0: the dump is empty/);
      const missing = await runScript(
        'import',
        { ...api, IMPORT_INDEX: '2', IMPORT_DEVICE: join(dir, 'nope') },
        { inputFile: join(dir, 'empty') },
      );
      expect(missing.exitCode).toBe(1);
      expect(missing.stderr).toMatch(/disk 2 \(.*nope\) does not exist/);
      const noPath = await runScript('import', { ...api, IMPORT_INDEX: '0' }, { inputFile: join(dir, 'empty') });
      expect(noPath.exitCode).toBe(1);
      expect(noPath.stderr).toMatch(/disk 0 has no local path/);
      const badIndex = await runScript(
        'import',
        { ...api, IMPORT_INDEX: 'x', IMPORT_DEVICE: disk },
        { inputFile: join(dir, 'empty') },
      );
      expect(badIndex.exitCode).toBe(1);
      expect(badIndex.stderr).toMatch(/IMPORT_INDEX is 'x'/);
    });
  });

  it('writes onto a block device holding stale data: zeros of the dump read as zeros', async () => {
    needRoot();
    await needPrograms('losetup', 'dash');
    await withTmpDir('gos-import', async (dir) => {
      const size = 4 * MiB;
      const dump = await sparseImage(join(dir, 'dump'), 3 * MiB, [
        [0, 1000],
        [2 * MiB - 7, 5000],
      ]);
      const backing = join(dir, 'backing');
      await garbageFile(backing, size);
      const loop = (await execa('losetup', ['--find', '--show', backing])).stdout.trim();
      try {
        const r = await runScript(
          'import',
          { ...api, IMPORT_INDEX: '0', IMPORT_DEVICE: loop },
          { inputFile: join(dir, 'dump') },
        );
        expect(r.stderr).toMatch(/imported 3 MiB/);
        expect(r.exitCode).toBe(0);
        const got = await readFile(loop);
        expect(got.length).toBe(size);
        expect(got.subarray(0, dump.length).equals(dump)).toBe(true);
        expectZero(got.subarray(dump.length), 'beyond the dump');
      } finally {
        await execa('losetup', ['-d', loop]);
      }
    });
  });
  it('writes every byte where the storage cannot zero itself, and says so', async () => {
    await needPrograms('dash');
    await withTmpDir('gos-import', async (dir) => {
      // Storage without punch-hole/zero-out support, as on some NFS or old
      // block drivers: fallocate fails there, whatever the reason.
      const bin = join(dir, 'bin');
      await mkdir(bin);
      await writeFile(join(bin, 'fallocate'), '#!/bin/sh\necho "fallocate: Operation not supported" >&2\nexit 1\n', {
        mode: 0o755,
      });
      const dump = await sparseImage(join(dir, 'dump'), 2 * MiB, [[MiB, 777]]);
      const disk = join(dir, 'disk0');
      await garbageFile(disk, 3 * MiB);
      const r = await runScript(
        'import',
        { ...api, PATH: `${bin}:${PATH}`, IMPORT_INDEX: '0', IMPORT_DEVICE: disk },
        { inputFile: join(dir, 'dump') },
      );
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toMatch(/cannot be zeroed cheaply; writing every byte/);
      expect(r.stderr).toMatch(/the last 1048576 bytes were left as they were/);
      const got = await readFile(disk);
      expect(got.subarray(0, dump.length).equals(dump)).toBe(true); // the dump's zeros were written
      expect(got.subarray(dump.length).every((b) => b === 0xa5)).toBe(true);
    });
  });
});

describe('cleanup', () => {
  it('removes its work directory on success, on failure and on SIGTERM', async () => {
    await withTmpDir('gos-cleanup', async (dir) => {
      const tmp = join(dir, 'tmp');
      await mkdir(tmp);
      const disk = join(dir, 'disk0');
      await sparseImage(disk, MiB, []);
      await sparseImage(join(dir, 'dump'), MiB, [[0, 10]]);
      await sparseImage(join(dir, 'big'), 2 * MiB, [[0, 10]]);
      const env = { ...api, TMPDIR: tmp, IMPORT_INDEX: '0', IMPORT_DEVICE: disk };
      expect((await runScript('import', env, { inputFile: join(dir, 'dump') })).exitCode).toBe(0);
      expect(await readdir(tmp)).toEqual([]);
      expect((await runScript('import', env, { inputFile: join(dir, 'big') })).exitCode).toBe(1);
      expect(await readdir(tmp)).toEqual([]);

      // Interrupted mid-copy: dash runs the trap once dd returns, then the stack.
      const child = execa('dash', [join(OS_DIR, 'import')], { env: { PATH, ...env }, extendEnv: false, reject: false });
      child.stdin!.write(Buffer.alloc(4096, 1));
      for (let i = 0; i < 100 && (await readdir(tmp)).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect((await readdir(tmp)).length).toBe(1); // the work dir exists while copying
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      child.stdin!.end();
      const r = await child;
      expect(r.exitCode).toBe(143);
      expect(await readdir(tmp)).toEqual([]);
    });
  });
});

describe('export', () => {
  it('writes the disk, and only the disk, to stdout and its size to EXP_SIZE_FD', async () => {
    await needPrograms('bash', 'dash');
    await withTmpDir('gos-export', async (dir) => {
      const disk = join(dir, 'disk0');
      const content = await sparseImage(disk, 5 * MiB, [
        [100, 300],
        [3 * MiB, 70_000],
      ]);
      const sizeFile = join(dir, 'size');
      // fd 12 is a pipe, as Ganeti's import-export daemon gives it: above 9,
      // where dash's own redirections cannot reach.
      const r = await execa(
        'bash',
        ['-c', '{ dash "$1" 12>&1 1>&3 3>&- | cat > "$2"; } 3>&1', '_', join(OS_DIR, 'export'), sizeFile],
        {
          env: { PATH, ...api, EXPORT_INDEX: '0', EXPORT_DEVICE: disk, EXPORT_DISK_PATH: disk, EXP_SIZE_FD: '12' },
          extendEnv: false,
          encoding: 'buffer',
          stdin: 'ignore',
        },
      );
      expect(Buffer.from(r.stdout).equals(content)).toBe(true);
      expect(await readFile(sizeFile, 'utf8')).toBe(`${5 * MiB}\n`);
      expect(Buffer.from(r.stderr).toString()).toMatch(/disk 0: exporting .*disk0, 5 MiB/);
    });
  });

  it('exports without EXP_SIZE_FD and rejects a bad one', async () => {
    await withTmpDir('gos-export', async (dir) => {
      const disk = join(dir, 'disk0');
      const content = await sparseImage(disk, MiB, [[10, 10]]);
      const plain = await runScript('export', { ...api, EXPORT_INDEX: '0', EXPORT_DEVICE: disk });
      expect(plain.exitCode).toBe(0);
      expect(plain.stdout.equals(content)).toBe(true);
      const bad = await runScript('export', {
        ...api,
        EXPORT_INDEX: '0',
        EXPORT_DEVICE: disk,
        EXP_SIZE_FD: '1; rm -rf /',
      });
      expect(bad.exitCode).toBe(1);
      expect(bad.stdout.length).toBe(0);
      expect(bad.stderr).toMatch(/EXP_SIZE_FD is .* not a file descriptor/);
    });
  });
});

describe('create', () => {
  const env = (disk: string, params: Record<string, string>) => ({
    ...api,
    DISK_COUNT: '1',
    DISK_0_PATH: disk,
    DISK_0_SIZE: '8',
    ...params,
  });

  it('writes a raw image onto disk 0, sparse, zeros after the image', async () => {
    await withTmpDir('gos-create', async (dir) => {
      const image = await sparseImage(join(dir, 'img.raw'), 3 * MiB, [
        [0, 512],
        [MiB, 100_000],
      ]);
      const disk = join(dir, 'disk0');
      await garbageFile(disk, 8 * MiB);
      const r = await runScript('create', env(disk, { OSP_IMAGE: join(dir, 'img.raw') }));
      expect(r.stderr).toMatch(/looks like raw/);
      expect(r.exitCode).toBe(0);
      const got = await readFile(disk);
      expect(got.length).toBe(8 * MiB);
      expect(got.subarray(0, image.length).equals(image)).toBe(true);
      expectZero(got.subarray(image.length), 'after the image');
      expect(await allocated(disk)).toBeLessThan(MiB);
    });
  });

  it('converts a qcow2 image (detected by its magic) and refuses one with a backing file', async () => {
    await needPrograms('qemu-img');
    await withTmpDir('gos-create', async (dir) => {
      const raw = await sparseImage(join(dir, 'src.raw'), 4 * MiB, [[2 * MiB + 5, 9000]]);
      await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', join(dir, 'src.raw'), join(dir, 'img.qcow2')]);
      const disk = join(dir, 'disk0');
      await garbageFile(disk, 6 * MiB);
      const r = await runScript('create', env(disk, { OSP_IMAGE: join(dir, 'img.qcow2') }));
      expect(r.stderr).toMatch(/looks like qcow2/);
      expect(r.exitCode).toBe(0);
      const got = await readFile(disk);
      expect(got.subarray(0, raw.length).equals(raw)).toBe(true);
      expectZero(got.subarray(raw.length), 'after the image');
      expect(await allocated(disk)).toBeLessThan(MiB);

      await execa('qemu-img', [
        'create',
        '-f',
        'qcow2',
        '-F',
        'qcow2',
        '-b',
        join(dir, 'img.qcow2'),
        join(dir, 'child.qcow2'),
      ]);
      const child = await runScript('create', env(disk, { OSP_IMAGE: join(dir, 'child.qcow2') }));
      expect(child.exitCode).toBe(1);
      expect(child.stderr).toMatch(/has a backing file/);
      // image_format=raw forces a raw copy of the qcow2 file itself
      const forced = await runScript(
        'create',
        env(disk, { OSP_IMAGE: join(dir, 'img.qcow2'), OSP_IMAGE_FORMAT: 'raw' }),
      );
      expect(forced.exitCode).toBe(0);
      const qcow = await readFile(join(dir, 'img.qcow2'));
      expect((await readFile(disk)).subarray(0, qcow.length).equals(qcow)).toBe(true);
    });
  });

  it('refuses an image larger than disk 0 before writing, and a missing image', async () => {
    await withTmpDir('gos-create', async (dir) => {
      await sparseImage(join(dir, 'big.raw'), 3 * MiB + 1, [[0, 10]]);
      const disk = join(dir, 'disk0');
      await garbageFile(disk, 3 * MiB);
      const big = await runScript('create', env(disk, { OSP_IMAGE: join(dir, 'big.raw') }));
      expect(big.exitCode).toBe(1);
      expect(big.stderr).toMatch(/is larger than disk 0 \(3 MiB\); nothing was written/);
      expect(big.stderr).toMatch(/hint: give disk 0 at least 4 MiB/);
      expect((await readFile(disk)).every((b) => b === 0xa5)).toBe(true);

      const none = await runScript('create', env(disk, {}));
      expect(none.exitCode).toBe(1);
      expect(none.stderr).toMatch(/no image given/);
      expect(none.stderr).toMatch(/--no-install/);
      const absent = await runScript('create', env(disk, { OSP_IMAGE: join(dir, 'absent.raw') }));
      expect(absent.exitCode).toBe(1);
      expect(absent.stderr).toMatch(/absent.raw does not exist on node/);
    });
  });
});

describe('verify and rename', () => {
  it('verify accepts good parameters and names each bad one', async () => {
    const ok = await runScript(
      'verify',
      { ...api, OSP_IMAGE: '/srv/images/a b.qcow2', OSP_IMAGE_FORMAT: 'qcow2' },
      { args: ['parameters'] },
    );
    expect(ok.stderr).toBe('');
    expect(ok.exitCode).toBe(0);
    expect((await runScript('verify', api, { args: ['parameters'] })).exitCode).toBe(0);
    const bad = await runScript(
      'verify',
      { ...api, OSP_IMAGE: 'images/a.raw', OSP_IMAGE_FORMAT: 'iso' },
      { args: ['parameters'] },
    );
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toMatch(/image 'images\/a.raw' is not an absolute path/);
    expect(bad.stderr).toMatch(/image_format 'iso' is not one of/);
  });

  it('rename leaves the guest alone and succeeds', async () => {
    const r = await runScript('rename', { ...api, INSTANCE_NAME: 'new.example', OLD_INSTANCE_NAME: 'old.example' });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toMatch(/renamed from old.example to new.example/);
  });
});
