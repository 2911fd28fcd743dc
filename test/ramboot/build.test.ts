/**
 * The ramboot initrd without a real kernel: module resolution from the
 * kernel's index files, the cpio writer read back by GNU cpio, a whole build
 * against a fake /lib/modules (gzip, plain, xz- and gzip-compressed modules),
 * the CLI, and init.sh's functions run by busybox sh on fake directories.
 * What needs the real kernel (booting) is in ramboot.slow.test.ts.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, stat, symlink, writeFile, link } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { isP2vError } from '../../lib/errors.js';
import { buildRamInitrd, initScriptPath, isStaticElf } from '../../ramboot/build.js';
import { moduleName } from '../../guest/module-names.js';
import { newcHeader } from '../../lib/cpio.js';
import { cpioArchive, type InitrdEntry } from '../../ramboot/cpio-writer.js';
import { KernelModules } from '../../ramboot/kernel-modules.js';
import { cliArgv } from '../helpers/cli.js';
import { needPrograms } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';

const INIT_SH = fileURLToPath(new URL('../../ramboot/init.sh', import.meta.url));
const RELEASE = '9.9.9-p2vtest';

/** The busybox the initrd needs; the default suite needs it too (busybox-static). */
async function staticBusybox(): Promise<string> {
  const p = '/bin/busybox';
  if (!existsSync(p)) throw new Error('busybox is missing: apt-get install busybox-static (or run scripts/setup.sh)');
  if (!isStaticElf(await readFile(p)))
    throw new Error('/bin/busybox is dynamically linked: apt-get install busybox-static');
  return p;
}

const DEP = [
  'kernel/drivers/virtio/virtio.ko:',
  'kernel/drivers/virtio/virtio_ring.ko:',
  'kernel/drivers/virtio/virtio_pci_modern_dev.ko:',
  'kernel/drivers/virtio/virtio_pci_legacy_dev.ko:',
  'kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
  'kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
  'kernel/drivers/scsi/scsi_common.ko:',
  'kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko',
  'kernel/drivers/scsi/virtio_scsi.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
  'kernel/drivers/scsi/sd_mod.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko',
  'kernel/net/core/failover.ko:',
  'kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko',
  'kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
  'kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
  'kernel/lib/crc16.ko:',
  'kernel/fs/mbcache.ko:',
  'kernel/fs/jbd2/jbd2.ko:',
  'kernel/fs/ext4/ext4.ko.gz: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko',
  'kernel/crypto/crc32c_generic.ko:',
  'kernel/arch/x86/crypto/crc32c-intel.ko:',
  'kernel/fs/xfs/xfs.ko:',
  '',
].join('\n');
const SOFTDEP = 'softdep ext4 pre: crypto-crc32c\n';
const ALIAS = 'alias crypto-crc32c crc32c_intel\nalias crypto-crc32c crc32c_generic\nalias fs-ext4 ext4\n';
const BUILTIN = 'kernel/drivers/block/loop.ko\n';

/** A fake /lib/modules/RELEASE whose module files hold their own name (compressed where the name says). */
async function fakeModules(dir: string): Promise<string> {
  const rel = join(dir, 'modules', RELEASE);
  for (const line of DEP.split('\n')) {
    const path = line.split(':')[0];
    if (!path) continue;
    await mkdir(join(rel, path, '..'), { recursive: true });
    const content = Buffer.from(`fake module ${path.replace(/\.(xz|gz)$/, '')}\n`);
    if (path.endsWith('.gz')) await writeFile(join(rel, path), gzipSync(content));
    else if (path.endsWith('.xz'))
      await writeFile(join(rel, path), (await execa('xz', ['-c'], { input: content, encoding: 'buffer' })).stdout);
    else await writeFile(join(rel, path), content);
  }
  await writeFile(join(rel, 'modules.dep'), DEP);
  await writeFile(join(rel, 'modules.softdep'), SOFTDEP);
  await writeFile(join(rel, 'modules.alias'), ALIAS);
  await writeFile(join(rel, 'modules.builtin'), BUILTIN);
  return join(dir, 'modules');
}

/** `cpio -itv` of an archive: "mode-string name" per member ("mode-string major,minor name" for devices). */
async function listCpio(archive: Buffer): Promise<string[]> {
  const r = await execa('cpio', ['-itv', '--quiet'], { input: archive });
  return r.stdout.split('\n').map((l) => {
    const f = l.trim().split(/\s+/);
    // A device shows "MAJOR, MINOR" where a file shows its size.
    return f[0]!.startsWith('c') ? `${f[0]} ${f[4]}${f[5]} ${f.slice(9).join(' ')}` : `${f[0]} ${f.slice(8).join(' ')}`;
  });
}

describe('KernelModules', () => {
  const km = KernelModules.fromText('/lib/modules/x', DEP, SOFTDEP, ALIAS, BUILTIN);

  it('loads every dependency before the module, each once', () => {
    const plan = km.resolve(['virtio_pci', 'virtio_blk']);
    expect(plan.files).toEqual([
      'kernel/drivers/virtio/virtio_ring.ko',
      'kernel/drivers/virtio/virtio.ko',
      'kernel/drivers/virtio/virtio_pci_modern_dev.ko',
      'kernel/drivers/virtio/virtio_pci_legacy_dev.ko',
      'kernel/drivers/virtio/virtio_pci.ko',
      'kernel/drivers/block/virtio_blk.ko.xz',
    ]);
    expect(plan.optional).toEqual([]);
  });

  it('follows soft dependencies through aliases and marks them optional', () => {
    const plan = km.resolve(['ext4']);
    expect(plan.files).toEqual([
      'kernel/arch/x86/crypto/crc32c-intel.ko',
      'kernel/crypto/crc32c_generic.ko',
      'kernel/fs/jbd2/jbd2.ko',
      'kernel/fs/mbcache.ko',
      'kernel/lib/crc16.ko',
      'kernel/fs/ext4/ext4.ko.gz',
    ]);
    expect(plan.optional).toEqual(['kernel/arch/x86/crypto/crc32c-intel.ko', 'kernel/crypto/crc32c_generic.ko']);
    // Asked for by name, a soft dependency is required after all.
    expect(km.resolve(['ext4', 'crc32c-generic']).optional).toEqual(['kernel/arch/x86/crypto/crc32c-intel.ko']);
  });

  it("treats '-' and '_' alike and knows built-in modules", () => {
    expect(moduleName('kernel/arch/x86/crypto/crc32c-intel.ko.zst')).toBe('crc32c_intel');
    const plan = km.resolve(['crc32c_intel', 'loop']);
    expect(plan.files).toEqual(['kernel/arch/x86/crypto/crc32c-intel.ko']);
    expect(plan.builtin).toEqual(['loop']);
    expect(km.has('crc32c-intel')).toBe(true);
  });

  it('refuses an unknown module', () => {
    let err: unknown;
    try {
      km.resolve(['virtio_blk', 'no_such_driver']);
    } catch (e) {
      err = e;
    }
    expect(isP2vError(err, 'USAGE')).toBe(true);
    expect((err as Error).message).toContain('no_such_driver');
  });

  it('names the package when the kernel has no modules here', async () => {
    await withTmpDir('ramboot', async (dir) => {
      const err = await KernelModules.load(dir, '6.1.0-99-amd64').catch((e: unknown) => e);
      expect(isP2vError(err, 'IO')).toBe(true);
      expect((err as { hint: string }).hint).toContain('linux-image-6.1.0-99-amd64');
    });
  });
});

describe('cpio writer', () => {
  it('writes headers the way GNU cpio reads them', async () => {
    await needPrograms('cpio');
    const h = newcHeader({ ino: 7, mode: 0o100644, fileSize: 5, name: 'etc/x' });
    expect(h.length % 4).toBe(0);
    expect(h.subarray(0, 14).toString('ascii')).toBe('07070100000007');

    await withTmpDir('ramboot', async (dir) => {
      await writeFile(join(dir, 'src'), 'from a host file\n');
      await writeFile(join(dir, 'empty'), '');
      const entries: InitrdEntry[] = [
        { type: 'dir', name: 'dev' },
        { type: 'dir', name: '/etc/' },
        { type: 'char', name: 'dev/console', major: 5, minor: 1 },
        { type: 'file', name: 'etc/a', mode: 0o600, data: Buffer.from('abc') },
        { type: 'file', name: 'etc/b', source: join(dir, 'src') },
        { type: 'file', name: 'etc/empty', source: join(dir, 'empty') },
        { type: 'symlink', name: 'etc/link', target: 'a' },
      ];
      const chunks: Buffer[] = [];
      for await (const c of cpioArchive(entries)) chunks.push(c);
      const archive = Buffer.concat(chunks);
      expect(await listCpio(archive)).toEqual([
        'drwxr-xr-x dev',
        'drwxr-xr-x etc',
        'crw------- 5,1 dev/console',
        '-rw------- etc/a',
        '-rw-r--r-- etc/b',
        '-rw-r--r-- etc/empty',
        'lrwxrwxrwx etc/link -> a',
      ]);
      const out = join(dir, 'out');
      await mkdir(out);
      await execa('cpio', ['-idm', '--quiet', '--no-absolute-filenames', 'etc/*'], { input: archive, cwd: out });
      expect(await readFile(join(out, 'etc/b'), 'utf8')).toBe('from a host file\n');
      expect(await readFile(join(out, 'etc/a'), 'utf8')).toBe('abc');
    });
  });

  it('refuses names that climb out of the archive', async () => {
    const gen = cpioArchive([{ type: 'dir', name: 'a/../../etc' }]);
    await expect(gen.next()).rejects.toThrow(/bad initramfs member name/);
  });
});

describe('buildRamInitrd against a fake /lib/modules', () => {
  it('writes a gzip cpio with busybox, /init, the modules in load order', async () => {
    await needPrograms('cpio', 'xz');
    const busybox = await staticBusybox();
    await withTmpDir('ramboot', async (dir) => {
      const modulesDir = await fakeModules(dir);
      const output = join(dir, 'initrd.img');
      const r = await buildRamInitrd({ kernelRelease: RELEASE, output, modulesDir, busybox, addModules: ['xfs'] });
      expect(r.bytes).toBe((await stat(output)).size);
      expect(existsSync(output + '.tmp')).toBe(false);
      const archive = gunzipSync(await readFile(output));
      const listing = await listCpio(archive);
      expect(listing).toContain('-rwxr-xr-x init');
      expect(listing).toContain('-rwxr-xr-x bin/busybox');
      expect(listing).toContain('crw------- 5,1 dev/console');
      expect(listing).toContain(`-rw-r--r-- lib/modules/${RELEASE}/kernel/drivers/block/virtio_blk.ko`);
      expect(listing).toContain(`-rw-r--r-- lib/modules/${RELEASE}/kernel/fs/ext4/ext4.ko`);
      expect(listing).toContain(`-rw-r--r-- lib/modules/${RELEASE}/kernel/fs/xfs/xfs.ko`);

      const out = join(dir, 'unpacked');
      await mkdir(out);
      await execa('cpio', ['-idm', '--quiet', '--no-absolute-filenames'], { input: archive, cwd: out });
      expect(await readFile(join(out, 'init'), 'utf8')).toBe(await readFile(INIT_SH, 'utf8'));
      // Compressed modules are stored decompressed: busybox insmod need not know xz.
      expect(await readFile(join(out, `lib/modules/${RELEASE}/kernel/drivers/block/virtio_blk.ko`), 'utf8')).toBe(
        'fake module kernel/drivers/block/virtio_blk.ko\n',
      );
      expect(await readFile(join(out, `lib/modules/${RELEASE}/kernel/fs/ext4/ext4.ko`), 'utf8')).toBe(
        'fake module kernel/fs/ext4/ext4.ko\n',
      );
      const list = (await readFile(join(out, 'etc/p2v-ramboot/modules'), 'utf8')).trimEnd().split('\n');
      const at = (suffix: string) => list.findIndex((l) => l.split(' ')[0]!.endsWith(suffix));
      for (const m of [
        '/virtio.ko',
        '/virtio_pci.ko',
        '/virtio_blk.ko',
        '/virtio_net.ko',
        '/virtio_scsi.ko',
        '/sd_mod.ko',
        '/virtio_console.ko',
        '/ext4.ko',
        '/xfs.ko',
      ])
        expect(at(m), m).toBeGreaterThanOrEqual(0);
      expect(at('/virtio.ko')).toBeLessThan(at('/virtio_blk.ko'));
      expect(at('/virtio_ring.ko')).toBeLessThan(at('/virtio_pci.ko'));
      expect(at('/jbd2.ko')).toBeLessThan(at('/ext4.ko'));
      expect(list[at('/crc32c-intel.ko')]).toBe(`${RELEASE}/kernel/arch/x86/crypto/crc32c-intel.ko optional`);
      expect(list[at('/ext4.ko')]).toBe(`${RELEASE}/kernel/fs/ext4/ext4.ko`);
      // Every listed module is in the archive.
      for (const l of list) expect(existsSync(join(out, 'lib/modules', l.split(' ')[0]!)), l).toBe(true);
      // The busybox inside runs (it is the host's static one).
      expect((await execa(join(out, 'bin/busybox'), ['true'])).exitCode).toBe(0);

      // Same inputs, same bytes.
      const again = join(dir, 'again.img');
      await buildRamInitrd({ kernelRelease: RELEASE, output: again, modulesDir, busybox, addModules: ['xfs'] });
      expect((await readFile(again)).equals(await readFile(output))).toBe(true);

      const plain = join(dir, 'plain.img');
      await buildRamInitrd({
        kernelRelease: RELEASE,
        output: plain,
        modulesDir,
        busybox,
        compression: 'none',
        addModules: ['xfs'],
      });
      expect((await readFile(plain)).equals(archive)).toBe(true);
    });
  });

  it('refuses a dynamically linked busybox and a bad release name', async () => {
    await withTmpDir('ramboot', async (dir) => {
      const modulesDir = await fakeModules(dir);
      const dyn = await buildRamInitrd({
        kernelRelease: RELEASE,
        output: join(dir, 'x.img'),
        modulesDir,
        busybox: '/bin/ls',
      }).catch((e: unknown) => e);
      expect(isP2vError(dyn, 'USAGE')).toBe(true);
      expect((dyn as Error).message).toContain('dynamically linked');
      expect((dyn as { hint: string }).hint).toContain('busybox-static');
      const bad = await buildRamInitrd({ kernelRelease: '../etc', output: join(dir, 'x.img'), modulesDir }).catch(
        (e: unknown) => e,
      );
      expect(isP2vError(bad, 'USAGE')).toBe(true);
      expect(existsSync(join(dir, 'x.img'))).toBe(false);
    });
  });

  it('p2v-ramboot build runs from the installed entry point', async () => {
    await staticBusybox();
    await withTmpDir('ramboot', async (dir) => {
      const modulesDir = await fakeModules(dir);
      const [node, script] = cliArgv('p2v-ramboot');
      const out = join(dir, 'cli.img');
      const ok = await execa(
        node!,
        [
          script!,
          'build',
          '--kernel',
          RELEASE,
          '-o',
          out,
          '--modules-dir',
          modulesDir,
          '--add-module',
          'xfs',
          '--json',
        ],
        { reject: false },
      );
      expect(ok.stderr).toContain(`p2v-ramboot: wrote ${out}`);
      expect(ok.exitCode).toBe(0);
      expect(JSON.parse(ok.stdout).modules).toContain('kernel/fs/xfs/xfs.ko');
      const bad = await execa(
        node!,
        [script!, 'build', '--kernel', RELEASE, '-o', out, '--modules-dir', modulesDir, '--add-module', 'nope'],
        { reject: false },
      );
      expect(bad.exitCode).toBe(2);
      expect(bad.stderr).toContain('p2v-ramboot: kernel module nope is not in');
      const missing = await execa(node!, [script!, 'build', '-o', out], { reject: false });
      expect(missing.exitCode).toBe(2);
      expect(missing.stderr).toContain('--kernel');
      const none = await execa(node!, [script!], { reject: false });
      expect(none.exitCode).toBe(2);
      expect(none.stderr).toContain('p2v-ramboot: no command given');
    });
  });
});

/** Run init.sh's functions in busybox sh (as in the initramfs), or in dash. */
async function initSh(body: string, shell: 'busybox' | 'dash' = 'busybox', env: Record<string, string> = {}) {
  const argv = shell === 'busybox' ? ['/bin/busybox', 'sh', '-c'] : ['dash', '-c'];
  return execa(argv[0]!, [...argv.slice(1), `. ${INIT_SH}\n${body}`], {
    reject: false,
    env: { P2V_RAMBOOT_LIB: '1', ...env },
  });
}

describe('init.sh', () => {
  it('is valid POSIX sh for dash and busybox', async () => {
    await needPrograms('dash');
    await staticBusybox();
    expect((await execa('dash', ['-n', INIT_SH], { reject: false })).exitCode).toBe(0);
    expect((await execa('/bin/busybox', ['sh', '-n', INIT_SH], { reject: false })).exitCode).toBe(0);
    expect(await initScriptPath()).toBe(INIT_SH);
  });

  it('reads the kernel command line', async () => {
    const r = await initSh(
      'parse_cmdline "BOOT_IMAGE=/vmlinuz root=UUID=1234-abcd ro rootfstype=ext4 rootflags=noatime p2v.margin=100 p2v.reserve=64 init=/bin/sh rootdelay=5 quiet"\n' +
        'echo "$ROOT|$ROOTFSTYPE|$ROOTFLAGS|$ROOTDELAY|$INIT|$MARGIN_MIB|$RESERVE_MIB|$BREAK"',
    );
    expect(r.stdout).toBe('UUID=1234-abcd|ext4|noatime|5|/bin/sh|100|64|0');
    const d = await initSh(
      'parse_cmdline "root=/dev/vda1 p2v.break"; echo "$ROOT|$ROOTDELAY|$INIT|$MARGIN_MIB|$RESERVE_MIB|$BREAK"',
    );
    expect(d.stdout).toBe('/dev/vda1|30|/sbin/init||128|1');
  });

  it('stops with a message when root= is missing or a number is bad', async () => {
    const r = await initSh('parse_cmdline "console=ttyS0" || echo FAILED');
    expect(r.stdout).toBe('FAILED');
    expect(r.stderr).toContain('p2v-ramboot: ERROR: no root= on the kernel command line');
    expect(r.stderr).toContain('p2v-ramboot: hint: add root=UUID=');
    const n = await initSh('parse_cmdline "root=/dev/vda1 p2v.margin=lots" || echo FAILED');
    expect(n.stdout).toBe('FAILED');
    expect(n.stderr).toContain("bad number 'lots'");
  });

  it('sizes the tmpfs from the used bytes and refuses when RAM is short', async () => {
    // 300 MiB used: margin is the 64 MiB floor.
    expect((await initSh('parse_cmdline root=/dev/vda1; plan_tmpfs 307200 900000')).stdout).toBe(
      String(307200 + 65536),
    );
    // 2 GiB used: margin is 10 %.
    expect((await initSh('parse_cmdline root=/dev/vda1; plan_tmpfs 2097152 4000000')).stdout).toBe(
      String(2097152 + 209715),
    );
    // Explicit margin.
    expect((await initSh('parse_cmdline "root=/dev/vda1 p2v.margin=10"; plan_tmpfs 1000 900000')).stdout).toBe(
      String(1000 + 10240),
    );
    // 300 MiB + 64 MiB margin + 128 MiB reserve = 492 MiB > 400 MiB available.
    const short = await initSh('parse_cmdline root=/dev/vda1; plan_tmpfs 307200 409600 || echo REFUSED');
    expect(short.stdout).toBe('REFUSED');
    expect(short.stderr).toContain(
      'p2v-ramboot: ERROR: not enough RAM to run the root filesystem from memory: it uses 300 MiB; with margin and reserve 492 MiB are needed, 400 MiB are available',
    );
    expect(short.stderr).toContain('give the instance at least 92 MiB more memory');
  });

  it('reads MemAvailable and the used space of a mounted filesystem', async () => {
    await withTmpDir('ramboot', async (dir) => {
      await writeFile(
        join(dir, 'meminfo'),
        'MemTotal:        1000000 kB\nMemFree:          500000 kB\nMemAvailable:     812345 kB\n',
      );
      expect((await initSh(`mem_available_kib ${dir}/meminfo`)).stdout).toBe('812345');
      await writeFile(join(dir, 'old'), 'MemTotal: 1 kB\n');
      expect((await initSh(`mem_available_kib ${dir}/old || echo NONE`)).stdout).toBe('NONE');
      expect(Number((await initSh(`used_kib ${dir}`)).stdout)).toBeGreaterThan(0);
    });
  });

  it('disables every fstab entry that touches the disk, keeps pseudo filesystems', async () => {
    await withTmpDir('ramboot', async (dir) => {
      const fstab = join(dir, 'fstab');
      await writeFile(
        fstab,
        [
          '# <file system> <mount point> <type> <options> <dump> <pass>',
          'UUID=4755f1f6 /               ext4    errors=remount-ro 0       1',
          'UUID=9999 /boot ext2 defaults 0 2',
          '/dev/vda5 none swap sw 0 0',
          'proc /proc proc defaults 0 0',
          'tmpfs /tmp tmpfs size=10% 0 0',
          '',
        ].join('\n'),
      );
      const r = await initSh(`neutralize_fstab ${fstab} /dev/vda1`);
      expect(r.exitCode).toBe(0);
      const lines = (await readFile(fstab, 'utf8')).split('\n');
      expect(lines[0]).toBe('# <file system> <mount point> <type> <options> <dump> <pass>');
      expect(lines[1]).toMatch(/^# p2v-ramboot: .*UUID=4755f1f6 \//);
      expect(lines[2]).toMatch(/^# p2v-ramboot: .*\/boot ext2/);
      expect(lines[3]).toMatch(/^# p2v-ramboot: .*swap/);
      expect(lines[4]).toBe('proc /proc proc defaults 0 0');
      expect(lines[5]).toBe('tmpfs /tmp tmpfs size=10% 0 0');
      // A root without fstab is fine.
      expect((await initSh(`neutralize_fstab ${dir}/none /dev/vda1`)).exitCode).toBe(0);
    });
  });

  it('copies a root tree with owners, modes, links and special files', async () => {
    await withTmpDir('ramboot', async (dir) => {
      const src = join(dir, 'rootmnt');
      const dst = join(dir, 'ram');
      await mkdir(join(src, 'etc/ssh'), { recursive: true });
      await mkdir(join(src, 'var/empty'), { recursive: true });
      await mkdir(dst);
      await writeFile(join(src, 'etc/ssh/ssh_host_ed25519_key'), 'secret');
      await chmod(join(src, 'etc/ssh/ssh_host_ed25519_key'), 0o600);
      await writeFile(join(src, 'etc/big'), Buffer.alloc(300_000, 7));
      await link(join(src, 'etc/big'), join(src, 'etc/big-hardlink'));
      await symlink('/lib/systemd/systemd', join(src, 'init'));
      await execa('mkfifo', [join(src, 'var/fifo')]);
      await execa('chown', ['1234:5678', join(src, 'var/empty')]);
      await chmod(join(src, 'var/empty'), 0o1777);
      const r = await initSh(`copy_root ${src} ${dst}`);
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      const describe_ = async (root: string) =>
        (await execa('sh', ['-c', `cd ${root} && find . -printf '%p %M %U:%G %s %l\\n' | sort`])).stdout;
      expect(await describe_(dst)).toBe(await describe_(src));
      const [a, b] = await Promise.all([stat(join(dst, 'etc/big')), stat(join(dst, 'etc/big-hardlink'))]);
      expect(a.ino).toBe(b.ino);
      // A tree that cannot be read fails the copy (the tmpfs would be incomplete).
      const bad = await initSh(`copy_root ${join(dir, 'no-such-root')} ${dst} || echo FAILED`);
      expect(bad.stdout).toBe('FAILED');
    });
  });

  it('resolves root= only to block devices', async () => {
    expect((await initSh('resolve_root /dev/null; echo "[$?]"')).stdout).toBe('[1]');
    expect((await initSh('resolve_root /dev/no-such-disk; echo "[$?]"')).stdout).toBe('[1]');
  });
});
