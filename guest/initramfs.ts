/**
 * Reading a guest's initramfs image as the kernel does (inspection records
 * which kernel modules each image holds; see InspectedKernel.initrdContent): zero or more uncompressed
 * newc archives (Debian and Ubuntu put CPU microcode first), then optionally a
 * compressed stream holding more archives. gzip is decompressed with zlib;
 * zstd, xz, lzma, lz4 and bzip2 through the host's own tools. Data streams
 * through CpioScanner (lib/cpio.ts), so only member names are kept. The
 * decompressor is started with lib/run's startProgram: its output is read as
 * a stream while it runs, and may be cut short once the archive ends.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { P2vError } from '../lib/errors.js';
import { startProgram } from '../lib/run.js';
import { CpioError, CpioScanner } from '../lib/cpio.js';

export type Compression = 'gzip' | 'zstd' | 'xz' | 'lzma' | 'lz4' | 'bzip2';

/** Compression of a stream from its first bytes; null when unknown. */
export function compressionOf(head: Buffer): Compression | null {
  const is = (...b: number[]) => b.every((x, i) => head[i] === x);
  if (is(0x1f, 0x8b) || is(0x1f, 0x9e)) return 'gzip';
  if (is(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  if (is(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return 'xz';
  if (is(0x02, 0x21, 0x4c, 0x18) || is(0x04, 0x22, 0x4d, 0x18)) return 'lz4';
  if (is(0x42, 0x5a, 0x68)) return 'bzip2';
  if (is(0x5d, 0x00, 0x00)) return 'lzma';
  return null;
}

const TOOL: Record<Exclude<Compression, 'gzip'>, [string, string[]]> = {
  zstd: ['zstd', ['-dc']],
  xz: ['xz', ['-dc']],
  lzma: ['xz', ['--format=lzma', '-dc']],
  lz4: ['lz4', ['-dc']],
  bzip2: ['bzip2', ['-dc']],
};

async function feed(source: AsyncIterable<Buffer>, scanner: CpioScanner): Promise<void> {
  for await (const chunk of source) {
    scanner.push(chunk);
    if (scanner.stopped) break;
  }
}

async function scanCompressed(path: string, start: number, kind: Compression, scanner: CpioScanner): Promise<void> {
  const input = createReadStream(path, { start });
  if (kind === 'gzip') {
    const gunzip = createGunzip();
    input.pipe(gunzip);
    try {
      await feed(gunzip, scanner);
    } finally {
      input.destroy();
      gunzip.destroy();
    }
    return;
  }
  const [program, args] = TOOL[kind];
  const { child } = await startProgram(program, args, {
    buffer: false,
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    reject: false,
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-2000)));
  input.pipe(child.stdin!);
  child.stdin!.on('error', () => undefined); // EPIPE when we stop reading early
  try {
    await feed(child.stdout! as Readable, scanner);
  } finally {
    input.destroy();
    if (scanner.stopped) child.kill();
  }
  const r = await child;
  if (r.exitCode !== 0 && !scanner.stopped) {
    throw new P2vError('INSPECTION', `cannot decompress the initramfs ${path} (${program} exit status ${r.exitCode})`, {
      stderrTail: stderr.trim() || undefined,
      hint: `check the image in the source system (lsinitramfs ${path}) and rebuild it there if it is damaged`,
    });
  }
}

/** Names of every member of an initramfs image (a host path). */
export async function listInitramfs(path: string): Promise<string[]> {
  const names: string[] = [];
  const scanner = new CpioScanner((e) => names.push(e.name));
  try {
    const fh = await open(path, 'r');
    let pos = 0;
    try {
      // Uncompressed archives first, read in place.
      const buf = Buffer.alloc(64 * 1024);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) break;
        const used = scanner.push(buf.subarray(0, bytesRead));
        pos += used;
        if (scanner.stopped) break;
      }
      scanner.end();
      if (!scanner.stopped) return names;
      const head = Buffer.alloc(8);
      await fh.read(head, 0, 8, pos);
      const kind = compressionOf(head);
      if (!kind) {
        throw new P2vError('INSPECTION', `the initramfs ${path} holds data we cannot read at byte ${pos}`, {
          hint: 'it is neither cpio nor a known compression: rebuild it in the source system, then retry',
        });
      }
      const inner = new CpioScanner((e) => names.push(e.name));
      await scanCompressed(path, pos, kind, inner);
      inner.end();
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof CpioError) {
      throw new P2vError('INSPECTION', `the initramfs ${path} is damaged: ${e.message}`, {
        hint: 'rebuild it in the source system (update-initramfs -u or dracut -f), then retry',
      });
    }
    throw e;
  }
  return names;
}
