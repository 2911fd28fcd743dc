/**
 * buildRamInitrd: the ramboot initramfs. A self-contained archive holding a
 * static busybox, our /init (ramboot/init.sh), the kernel modules needed to
 * reach a virtio disk, an ext4 root and a virtio NIC, and the list saying in
 * which order to insmod them. See docs/ramboot.md for why it is not built
 * with initramfs-tools.
 *
 *   const report = await buildRamInitrd({ kernelRelease: '6.1.0-56-amd64', output: 'initrd.img' });
 *
 * The archive is written to OUTPUT.tmp and renamed at the end, so a failed
 * build never leaves a half-written initrd where a hypervisor would boot it.
 */
import { createWriteStream } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip, gunzipSync } from 'node:zlib';
import { P2vError } from '../lib/errors.js';
import { run } from '../lib/run.js';
import { cpioArchive, type InitrdEntry } from './cpio-writer.js';
import { KernelModules } from './kernel-modules.js';

/** Drivers for a Ganeti KVM instance with paravirtual disk and NIC and an ext4 root. */
export const DEFAULT_MODULES: readonly string[] = [
  'virtio_pci',
  'virtio_blk',
  'virtio_scsi',
  'sd_mod',
  'virtio_net',
  'virtio_console',
  'ext4',
];

export interface RamInitrdOptions {
  /** Kernel release (`uname -r` of the kernel the initrd will boot with). */
  kernelRelease: string;
  /** Where to write the initrd. */
  output: string;
  /** Holds RELEASE/modules.dep and the module files (default /lib/modules). */
  modulesDir?: string;
  /** A statically linked busybox (default /bin/busybox from busybox-static). */
  busybox?: string;
  /** Modules on top of DEFAULT_MODULES (e.g. xfs for an xfs root). */
  addModules?: readonly string[];
  /** gzip (default; every kernel reads it) or none (a plain cpio). */
  compression?: 'gzip' | 'none';
}

export interface RamInitrdReport {
  output: string;
  bytes: number;
  kernelRelease: string;
  /** Module files in load order, relative to the release dir. */
  modules: string[];
  /** Requested modules that are built into this kernel. */
  builtin: string[];
  busybox: string;
}

/** Where ramboot/init.sh is: beside this module in the source tree, or two levels up from dist/ramboot. */
export async function initScriptPath(): Promise<string> {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, 'init.sh'), join(here, '..', '..', 'ramboot', 'init.sh')]) {
    try {
      await stat(p);
      return p;
    } catch {
      /* next */
    }
  }
  throw new P2vError('IO', 'ramboot/init.sh is missing from this installation', { hint: 'reinstall ganeti-p2v' });
}

/**
 * True when the ELF file has no PT_INTERP program header, i.e. runs without a
 * dynamic loader (which the initramfs does not have).
 */
export function isStaticElf(head: Buffer): boolean {
  if (head.length < 64 || head.readUInt32BE(0) !== 0x7f454c46) throw new RangeError('not an ELF file');
  const is64 = head[4] === 2;
  const le = head[5] === 1;
  const u16 = (o: number) => (le ? head.readUInt16LE(o) : head.readUInt16BE(o));
  const u32 = (o: number) => (le ? head.readUInt32LE(o) : head.readUInt32BE(o));
  const phoff = is64 ? Number(le ? head.readBigUInt64LE(0x20) : head.readBigUInt64BE(0x20)) : u32(0x1c);
  const phentsize = u16(is64 ? 0x36 : 0x2a);
  const phnum = u16(is64 ? 0x38 : 0x2c);
  if (phoff + phentsize * phnum > head.length) throw new RangeError('ELF program headers beyond the bytes read');
  for (let i = 0; i < phnum; i++) if (u32(phoff + i * phentsize) === 3 /* PT_INTERP */) return false;
  return true;
}

async function checkBusybox(path: string): Promise<void> {
  let head: Buffer;
  try {
    const fh = await open(path, 'r');
    try {
      head = Buffer.alloc(65536);
      const { bytesRead } = await fh.read(head, 0, head.length, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw new P2vError('MISSING_PROGRAM', `busybox is not at ${path}`, {
      hint: 'install it: apt-get install busybox-static (or pass --busybox)',
      cause: e,
    });
  }
  let isStatic: boolean;
  try {
    isStatic = isStaticElf(head);
  } catch (e) {
    throw new P2vError('USAGE', `${path} is not an ELF executable`, {
      hint: 'pass a statically linked busybox with --busybox',
      cause: e,
    });
  }
  if (!isStatic)
    throw new P2vError('USAGE', `${path} is dynamically linked and cannot run in the initramfs`, {
      hint: 'install busybox-static (apt-get install busybox-static) or pass a static busybox with --busybox',
    });
}

/** Module bytes as insmod wants them: busybox may lack xz/zstd module support, so decompress here. */
async function moduleEntry(releaseDir: string, rel: string, release: string): Promise<InitrdEntry> {
  const src = join(releaseDir, rel);
  const plain = rel.replace(/\.(xz|zst|gz)$/, '');
  const name = `lib/modules/${release}/${plain}`;
  if (rel.endsWith('.gz')) return { type: 'file', name, data: gunzipSync(await readFile(src)) };
  if (rel.endsWith('.xz') || rel.endsWith('.zst')) {
    const prog = rel.endsWith('.xz') ? 'xz' : 'zstd';
    // stripFinalNewline would eat a module's last byte when it is 0x0a.
    const r = await run(prog, ['-dc', src], {
      encoding: 'buffer',
      stripFinalNewline: false,
      what: `decompressing ${rel}`,
    });
    return { type: 'file', name, data: Buffer.from(r.stdout as unknown as Uint8Array) };
  }
  return { type: 'file', name, source: src };
}

/** Every directory above each path, parents first, once. */
function parentDirs(paths: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const p of paths) {
    const parts = p.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!seen.has(d)) {
        seen.add(d);
        out.push(d);
      }
    }
  }
  return out;
}

/** The archive's members, in the order they are written. */
export async function initrdEntries(
  opts: RamInitrdOptions,
): Promise<{ entries: InitrdEntry[]; report: Omit<RamInitrdReport, 'bytes'> }> {
  const modulesDir = opts.modulesDir ?? '/lib/modules';
  const busybox = opts.busybox ?? '/bin/busybox';
  const release = opts.kernelRelease;
  if (!/^[\w.+~-]+$/.test(release))
    throw new P2vError('USAGE', `bad kernel release "${release}"`, {
      hint: 'pass the name of a directory under /lib/modules, e.g. 6.1.0-56-amd64',
    });
  await checkBusybox(busybox);
  const km = await KernelModules.load(modulesDir, release);
  const plan = km.resolve([...DEFAULT_MODULES, ...(opts.addModules ?? [])]);
  const modEntries: InitrdEntry[] = [];
  for (const rel of plan.files) modEntries.push(await moduleEntry(km.releaseDir, rel, release));
  // One module per line, "RELEASE/PATH.ko [optional]", in load order (init.sh reads it).
  const soft = new Set(plan.optional);
  const loadList = plan.files.map(
    (f) => `${release}/${f.replace(/\.(xz|zst|gz)$/, '')}${soft.has(f) ? ' optional' : ''}`,
  );
  const dirs = parentDirs([
    'bin/x',
    'sbin/x',
    'usr/bin/x',
    'usr/sbin/x',
    'dev/x',
    'proc/x',
    'sys/x',
    'run/x',
    'tmp/x',
    'root/x',
    'etc/p2v-ramboot/x',
    ...modEntries.map((e) => e.name),
  ]);
  const initScript = await readFile(await initScriptPath());
  const info = [
    `kernel_release=${release}`,
    `modules=${plan.files.length}`,
    `builtin=${plan.builtin.join(',')}`,
    '',
  ].join('\n');
  const entries: InitrdEntry[] = [
    ...dirs.map((name): InitrdEntry => ({ type: 'dir', name, mode: name === 'tmp' ? 0o1777 : 0o755 })),
    { type: 'char', name: 'dev/console', mode: 0o600, major: 5, minor: 1 },
    { type: 'char', name: 'dev/null', mode: 0o666, major: 1, minor: 3 },
    { type: 'file', name: 'bin/busybox', mode: 0o755, source: busybox },
    { type: 'symlink', name: 'bin/sh', target: 'busybox' },
    { type: 'file', name: 'init', mode: 0o755, data: initScript },
    { type: 'file', name: 'etc/p2v-ramboot/modules', data: Buffer.from(loadList.map((l) => l + '\n').join('')) },
    { type: 'file', name: 'etc/p2v-ramboot/build-info', data: Buffer.from(info) },
    ...modEntries,
  ];
  return {
    entries,
    report: {
      output: resolve(opts.output),
      kernelRelease: release,
      modules: plan.files,
      builtin: plan.builtin,
      busybox,
    },
  };
}

/** Build the initrd at opts.output (atomically) and say what went in. */
export async function buildRamInitrd(opts: RamInitrdOptions): Promise<RamInitrdReport> {
  const { entries, report } = await initrdEntries(opts);
  const tmp = `${report.output}.tmp`;
  try {
    const source = Readable.from(cpioArchive(entries));
    const sink = createWriteStream(tmp, { mode: 0o644 });
    if ((opts.compression ?? 'gzip') === 'gzip') await pipeline(source, createGzip({ level: 9 }), sink);
    else await pipeline(source, sink);
    await rename(tmp, report.output);
  } catch (e) {
    await rm(tmp, { force: true });
    if (e instanceof P2vError) throw e;
    throw new P2vError('IO', `cannot write ${report.output}: ${(e as Error).message}`, {
      hint: 'check the output directory exists and has space',
      cause: e,
    });
  }
  return { ...report, bytes: (await stat(report.output)).size };
}
