/**
 * Running host programs (qemu-img, nbdkit, losetup, mount, …) through execa.
 * A failure becomes a P2vError('COMMAND_FAILED') carrying the command line and
 * the tail of stderr; a missing program becomes P2vError('MISSING_PROGRAM')
 * naming the Debian package to install. Every program the product runs goes
 * through here: `run` to completion (or `allowFailure` where a non-zero status
 * is an answer, not an error), `startProgram` for a server or a stream whose
 * life the caller manages.
 */
import type { Options, Result, ResultPromise } from 'execa';
import { P2vError } from './errors.js';

/**
 * execa, loaded on first use: loading it is about 240 ms of a CLI's start-up
 * on this project's machines, and some runs (p2v-import --block-map, --list)
 * start no program at all.
 */
let execaModule: Promise<typeof import('execa')> | undefined;
const loadExeca = () => (execaModule ??= import('execa'));

/** Debian package that provides each program we call. */
export const PACKAGE_OF: Record<string, string> = {
  'qemu-img': 'qemu-utils',
  'qemu-nbd': 'qemu-utils',
  'qemu-storage-daemon': 'qemu-system-common',
  'qemu-system-x86_64': 'qemu-system-x86',
  'grub-mkimage': 'grub-common',
  'grub-bios-setup': 'grub-pc-bin',
  mdir: 'mtools',
  mcopy: 'mtools',
  mmd: 'mtools',
  mtype: 'mtools',
  'mkfs.fat': 'dosfstools',
  'fsck.fat': 'dosfstools',
  curl: 'curl',
  python3: 'python3',
  nbdkit: 'nbdkit',
  nbdfuse: 'nbdfuse',
  nbdinfo: 'libnbd-bin',
  nbdcopy: 'libnbd-bin',
  'mkfs.ext4': 'e2fsprogs',
  'mkfs.xfs': 'xfsprogs',
  xfs_info: 'xfsprogs',
  xfs_db: 'xfsprogs',
  xfs_growfs: 'xfsprogs',
  xfs_repair: 'xfsprogs',
  xfsdump: 'xfsdump',
  xfsrestore: 'xfsdump',
  rsync: 'rsync',
  btrfs: 'btrfs-progs',
  resize2fs: 'e2fsprogs',
  dumpe2fs: 'e2fsprogs',
  chattr: 'e2fsprogs',
  lsattr: 'e2fsprogs',
  getfattr: 'attr',
  setfattr: 'attr',
  getfacl: 'acl',
  setfacl: 'acl',
  blockdev: 'util-linux',
  e2fsck: 'e2fsprogs',
  tune2fs: 'e2fsprogs',
  debugfs: 'e2fsprogs',
  mkswap: 'util-linux',
  pvcreate: 'lvm2',
  vgcreate: 'lvm2',
  vgcfgrestore: 'lvm2',
  cryptsetup: 'cryptsetup-bin',
  swaplabel: 'util-linux',
  blkid: 'util-linux',
  losetup: 'util-linux',
  mount: 'mount',
  umount: 'mount',
  fstrim: 'util-linux',
  blkdiscard: 'util-linux',
  fallocate: 'util-linux',
  sync: 'coreutils',
  findmnt: 'util-linux',
  sfdisk: 'fdisk',
  dash: 'dash',
  flock: 'util-linux',
  unshare: 'util-linux',
  ip: 'iproute2',
  truncate: 'coreutils',
  xmllint: 'libxml2-utils',
  cpio: 'cpio',
  busybox: 'busybox-static',
  lz4: 'lz4',
  bzip2: 'bzip2',
  chroot: 'coreutils',
  zstd: 'zstd',
  xz: 'xz-utils',
  gzip: 'gzip',
  tar: 'tar',
  sshd: 'openssh-server',
  ssh: 'openssh-client',
  'ssh-keygen': 'openssh-client',
  fusermount3: 'fuse3',
  debootstrap: 'debootstrap',
};

const found = new Map<string, string | null>();

/** Absolute path of `program` on PATH (or the usual sbin dirs), or null. */
export async function which(program: string): Promise<string | null> {
  if (found.has(program)) return found.get(program)!;
  const { access, constants } = await import('node:fs/promises');
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = `${d}/${program}`;
    try {
      await access(p, constants.X_OK);
      found.set(program, p);
      return p;
    } catch {
      /* try next */
    }
  }
  found.set(program, null);
  return null;
}

/** Throws MISSING_PROGRAM naming the Debian package when `program` is absent. */
export async function requireProgram(program: string): Promise<string> {
  // A path (a site hook) is run as it is, when it may be executed; only bare names are looked up.
  if (program.includes('/')) {
    const { access, constants } = await import('node:fs/promises');
    const ok = await access(program, constants.X_OK).then(
      () => true,
      () => false,
    );
    if (ok) return program;
    throw new P2vError('MISSING_PROGRAM', `${program} is not an executable file`, {
      hint: `check that ${program} exists and has its execute bit set`,
    });
  }
  const p = await which(program);
  if (p) return p;
  const pkg = PACKAGE_OF[program];
  throw new P2vError('MISSING_PROGRAM', `${program} is not installed`, {
    hint: pkg ? `install it: apt-get install ${pkg}` : `install ${program}`,
  });
}

function tail(text: string | undefined, lines = 8): string | undefined {
  if (!text) return undefined;
  const all = text.trimEnd().split('\n');
  return all.slice(-lines).join('\n') || undefined;
}

export function quoteArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export interface RunOptions extends Options {
  /** Explain the step, used as the error message prefix ("mounting /dev/loop3"). */
  what?: string;
  /**
   * A non-zero exit status is an answer the caller reads from the result's
   * exitCode (a probe, a step with a fallback), not a COMMAND_FAILED error. A
   * missing program is still an error.
   */
  allowFailure?: boolean;
}

/**
 * Run a program to completion and return its result; throw a P2vError with the
 * command line and stderr tail when it fails.
 */
export async function run(program: string, args: readonly string[], opts: RunOptions = {}): Promise<Result> {
  const { what, allowFailure, ...execaOpts } = opts;
  await requireProgram(program);
  try {
    const reject = allowFailure ? false : execaOpts.reject;
    const { execa } = await loadExeca();
    return (await execa(program, args, { stripFinalNewline: true, ...execaOpts, reject })) as Result;
  } catch (e: unknown) {
    const err = e as { exitCode?: number; stderr?: unknown; shortMessage?: string; signal?: string };
    const cmd = quoteArgv([program, ...args]);
    const how =
      err.exitCode !== undefined ? `exit status ${err.exitCode}` : (err.signal ?? err.shortMessage ?? 'failed');
    throw new P2vError('COMMAND_FAILED', `${what ? what + ': ' : ''}${program} failed (${how})`, {
      command: cmd,
      stderrTail: tail(typeof err.stderr === 'string' ? err.stderr : undefined),
      cause: e,
    });
  }
}

/** Run and return trimmed stdout. */
export async function runText(program: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(program, args, opts);
  return String(r.stdout ?? '').trim();
}

/**
 * Start a program that outlives this call (nbdkit serving an overlay, a
 * decompressor in a pipeline) after the same missing-program check; the
 * caller owns the child: its stdio, its exit, and the words for its failure.
 * (Wrapped in an object: the child is a promise, which `await` would wait out.)
 */
export async function startProgram<O extends Options>(
  program: string,
  args: readonly string[],
  opts: O,
): Promise<{ child: ResultPromise<{} & O> }> {
  await requireProgram(program);
  const { execa } = await loadExeca();
  return { child: execa(program, args, opts) };
}
