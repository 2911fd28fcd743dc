/**
 * Writing "newc" cpio archives (magic 070701), the format the kernel unpacks
 * an initramfs from. The codec is lib/cpio.ts (`newcHeader`); `cpioArchive` turns a list
 * of InitrdEntry into the archive's bytes as an async iterable, reading file
 * contents from disk as it goes (a member is never held whole in memory).
 *
 * Every member is written owned by root, with a fixed mtime and inode numbers
 * counted from 1, so the same inputs give the same bytes (a reproducible
 * initrd) and building needs no root privileges: device nodes such as
 * /dev/console are described in the archive, never created with mknod.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { newcHeader, pad4 } from '../lib/cpio.js';

export type InitrdEntry =
  | { type: 'dir'; name: string; mode?: number }
  | { type: 'file'; name: string; mode?: number; /** content */ data: Buffer }
  | { type: 'file'; name: string; mode?: number; /** copied from this host file */ source: string }
  | { type: 'symlink'; name: string; target: string }
  | { type: 'char'; name: string; mode?: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const TRAILER = 'TRAILER!!!';

/** Archive member names are relative ("bin/busybox"), as the kernel expects. */
function memberName(name: string): string {
  const n = name.replace(/^\/+/, '').replace(/\/+$/, '');
  if (!n || n.split('/').some((p) => p === '..')) throw new RangeError(`bad initramfs member name: ${name}`);
  return n;
}

/** The archive bytes for `entries`, in order, ending with the trailer. */
export async function* cpioArchive(entries: Iterable<InitrdEntry>, mtime = 0): AsyncGenerator<Buffer> {
  let ino = 0;
  for (const e of entries) {
    ino++;
    const name = memberName(e.name);
    switch (e.type) {
      case 'dir':
        yield newcHeader({ ino, mode: S_IFDIR | (e.mode ?? 0o755), nlink: 2, mtime, fileSize: 0, name });
        break;
      case 'symlink': {
        const data = Buffer.from(e.target, 'utf8');
        yield newcHeader({ ino, mode: S_IFLNK | 0o777, mtime, fileSize: data.length, name });
        yield Buffer.concat([data, Buffer.alloc(pad4(data.length))]);
        break;
      }
      case 'char':
        yield newcHeader({
          ino,
          mode: S_IFCHR | (e.mode ?? 0o600),
          mtime,
          fileSize: 0,
          rdevMajor: e.major,
          rdevMinor: e.minor,
          name,
        });
        break;
      case 'file': {
        const mode = S_IFREG | (e.mode ?? 0o644);
        if ('data' in e) {
          yield newcHeader({ ino, mode, mtime, fileSize: e.data.length, name });
          yield Buffer.concat([e.data, Buffer.alloc(pad4(e.data.length))]);
        } else {
          const size = (await stat(e.source)).size;
          yield newcHeader({ ino, mode, mtime, fileSize: size, name });
          let got = 0;
          if (size > 0) {
            for await (const chunk of createReadStream(e.source, { end: size - 1 })) {
              got += (chunk as Buffer).length;
              yield chunk as Buffer;
            }
          }
          if (got !== size) throw new Error(`${e.source} changed size while it was archived`);
          yield Buffer.alloc(pad4(size));
        }
        break;
      }
    }
  }
  yield newcHeader({ ino: 0, mode: 0, nlink: 1, fileSize: 0, name: TRAILER });
}
