/**
 * The EFI system partition (a FAT filesystem), read and written with mtools
 * straight on a disk file at the partition's byte offset
 * (`mdir -i IMAGE@@OFFSET`), never through a vfat mount.
 *
 * Why mtools always, and not only where `mount -t vfat` fails: these build
 * machines have no vfat in the kernel, so mtools is the path the tests can
 * prove; one path means a live image with vfat behaves as tested. And the
 * ESP is never mounted while mtools writes it (a mounted vfat keeps its FAT
 * in the page cache and writes it back at unmount, over whatever mtools
 * wrote). FAT has no symbolic links, so nothing here can be led outside the
 * partition. The disk file is the overlay's nbdfuse view: writes land in the
 * cow overlay, never on the source.
 *
 *   const esp = new EspFiles(diskFile, offset, size)
 *   await esp.list()                       → [{ path: '/EFI/debian/shimx64.efi', dir: false }, …]
 *   await esp.find('/efi/boot/bootx64.efi') → '/EFI/BOOT/BOOTX64.EFI' | null (FAT ignores case)
 *   await esp.read(path)                    → Buffer | null
 *   await esp.write(path, bytes)            (parent directories made, an existing file replaced)
 *
 * Paths are ESP paths ("/EFI/BOOT/BOOTX64.EFI"); names come from the guest,
 * so callers print them with lib/text printable.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { run } from '../lib/run.js';

export interface EspEntry {
  /** "/EFI/debian/shimx64.efi", as the filesystem spells it. */
  path: string;
  dir: boolean;
}

/** mtools' environment: no drive letters from the host's mtools.conf, no geometry check (ESPs are made by many tools). */
const ENV = { MTOOLS_SKIP_CHECK: '1', LANG: 'C', LC_ALL: 'C' };

function espPath(path: string): string {
  const p = posix.normalize(`/${path}`);
  if (p.split('/').some((c) => c === '..'))
    throw new P2vError('INSPECTION', `ESP path ${path} leaves the partition`, {
      hint: 'this is a bug: ESP paths are absolute',
    });
  return p;
}

export class EspFiles {
  private entries: EspEntry[] | undefined;

  constructor(
    readonly image: string,
    readonly offset: number,
    readonly size: number,
  ) {}

  /** mtools' drive spec: the image at the partition's byte offset. */
  private get drive(): string {
    return `${this.image}@@${this.offset}`;
  }

  /** Every file and directory on the ESP (cached until the next write). */
  async list(): Promise<EspEntry[]> {
    if (this.entries) return this.entries;
    const r = await run('mdir', ['-i', this.drive, '-b', '-/', '::/'], {
      what: `listing the EFI system partition at offset ${this.offset}`,
      env: ENV,
      allowFailure: true,
    });
    // An empty FAT makes mdir say "No files" and exit 1; anything else is a damaged or foreign filesystem.
    if (r.exitCode !== 0 && !/no files/i.test(String(r.stderr ?? '') + String(r.stdout ?? '')))
      throw new P2vError('INSPECTION', `cannot read the EFI system partition at offset ${this.offset} (mdir failed)`, {
        hint: 'check the partition with fsck.vfat -n on the source; a damaged ESP cannot be converted',
        stderrTail: String(r.stderr ?? '').slice(-500),
      });
    this.entries = String(r.stdout ?? '')
      .split('\n')
      .filter((l) => l.startsWith('::/'))
      .map((l) => (l.endsWith('/') ? { path: l.slice(2, -1), dir: true } : { path: l.slice(2), dir: false }));
    return this.entries;
  }

  /** The path as the ESP spells it, matched without regard to case as FAT does; null when absent. */
  async find(path: string, kind: 'file' | 'dir' = 'file'): Promise<string | null> {
    const want = espPath(path).toLowerCase();
    const e = (await this.list()).find((x) => x.path.toLowerCase() === want && x.dir === (kind === 'dir'));
    return e ? e.path : null;
  }

  /** Files directly in `dir` (names only). */
  async filesIn(dir: string): Promise<string[]> {
    const d = espPath(dir).toLowerCase();
    return (await this.list())
      .filter((e) => !e.dir && posix.dirname(e.path).toLowerCase() === d)
      .map((e) => posix.basename(e.path));
  }

  async read(path: string): Promise<Buffer | null> {
    const found = await this.find(path);
    if (found === null) return null;
    const r = await run('mcopy', ['-n', '-i', this.drive, `::${found}`, '-'], {
      what: `reading ${found} from the EFI system partition`,
      env: ENV,
      encoding: 'buffer',
      stripFinalNewline: false,
    });
    return Buffer.from(r.stdout as unknown as Uint8Array);
  }

  /** Write `data` at `path`, making the directories above it; an existing file of that name is replaced. */
  async write(path: string, data: Buffer): Promise<void> {
    const p = espPath(path);
    const parts = p.split('/').filter(Boolean);
    let dir = '';
    for (const c of parts.slice(0, -1)) {
      dir += `/${c}`;
      if ((await this.find(dir, 'dir')) === null) {
        await run('mmd', ['-i', this.drive, `::${dir}`], {
          what: `making ${dir} on the EFI system partition`,
          env: ENV,
        });
        this.entries = undefined;
      }
    }
    // The name keeps the case of an existing file (FAT would treat both as one anyway).
    const target = (await this.find(p)) ?? p;
    const work = await mkdtemp(join(tmpdir(), 'p2v-esp-'));
    try {
      const tmp = join(work, 'file');
      await writeFile(tmp, data, { mode: 0o600 });
      // -o -D o: replace an existing file without asking (mtools would prompt on a terminal).
      await run('mcopy', ['-o', '-D', 'o', '-i', this.drive, tmp, `::${target}`], {
        what: `writing ${target} on the EFI system partition`,
        env: ENV,
      });
    } finally {
      this.entries = undefined;
      await rm(work, { recursive: true, force: true });
    }
  }
}
