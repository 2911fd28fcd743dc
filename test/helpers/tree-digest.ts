/**
 * Everything a filesystem copy or resize must keep, as data a test compares
 * before and after:
 *
 *   buildRichTree(root, { bulkBytes }): a tree with one of each thing that is
 *     easy to lose (sparse file, hard links, symlink, fifo, device nodes,
 *     foreign owners, setuid/setgid/sticky, immutable and append-only flags, user./trusted./security.selinux
 *     xattrs, POSIX access and default ACLs, old timestamps) plus about bulkBytes
 *     of random file content, scattered over the filesystem.
 *   treeDigest(root): TreeEntry[] (one per path, sorted) and treeDigestHash()
 *     over them.
 *
 * Reads through the real tools (getfattr, getfacl, lsattr from the attr, acl
 * and e2fsprogs packages), so what is compared is what the kernel shows.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  symlink,
  link,
  lutimes,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

export interface TreeEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block' | 'socket';
  mode: string;
  uid: number;
  gid: number;
  /** mtime in nanoseconds. */
  mtime: string;
  size?: number;
  sha256?: string;
  target?: string;
  rdev?: string;
  /** Regular files with more than one link: the first path (sorted) of the inode, the same for all of them. */
  linkGroup?: string;
  /** Regular files with holes: allocated bytes (st_blocks × 512) when less than the size. */
  allocated?: number;
  /** name=hexvalue, sorted (every namespace getfattr shows: user., trusted., security., system.posix_acl_*). */
  xattrs: string[];
  /** getfacl's entries for a file with an extended ACL (access and default). */
  acl?: string[];
  /** lsattr's inode flags (immutable, append-only, nodump …), for files and directories. */
  flags?: string;
}

function typeOf(s: import('node:fs').BigIntStats): TreeEntry['type'] {
  if (s.isFile()) return 'file';
  if (s.isDirectory()) return 'dir';
  if (s.isSymbolicLink()) return 'symlink';
  if (s.isFIFO()) return 'fifo';
  if (s.isCharacterDevice()) return 'char';
  if (s.isBlockDevice()) return 'block';
  return 'socket';
}

async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Parse "# file: PATH" blocks of getfattr/getfacl output into PATH → lines. */
function blocks(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of text.split('\n')) {
    const m = /^# file: (.*)$/.exec(line);
    if (m) {
      const p = m[1]!.replace(/^\.(\/|$)/, '') || '.';
      cur = [];
      out.set(p, cur);
    } else if (cur && line && !line.startsWith('#')) cur.push(line);
  }
  return out;
}

export async function treeDigest(root: string): Promise<TreeEntry[]> {
  const entries: TreeEntry[] = [];
  const inodes = new Map<bigint, string[]>();
  const walk = async (rel: string): Promise<void> => {
    const abs = rel === '.' ? root : join(root, rel);
    const s = await lstat(abs, { bigint: true });
    const type = typeOf(s);
    const e: TreeEntry = {
      path: rel,
      type,
      mode: (Number(s.mode) & 0o7777).toString(8),
      uid: Number(s.uid),
      gid: Number(s.gid),
      mtime: String(s.mtimeNs),
      xattrs: [],
    };
    if (type === 'file') {
      e.size = Number(s.size);
      e.sha256 = await fileSha256(abs);
      if (s.nlink > 1n) inodes.set(s.ino, [...(inodes.get(s.ino) ?? []), rel]);
      const allocated = Number(s.blocks) * 512;
      if (allocated < e.size) e.allocated = allocated;
    } else if (type === 'symlink') e.target = await readlink(abs);
    else if (type === 'char' || type === 'block') e.rdev = String(s.rdev);
    entries.push(e);
    if (type === 'dir')
      for (const name of (await readdir(abs)).sort()) await walk(rel === '.' ? name : `${rel}/${name}`);
  };
  await walk('.');
  for (const paths of inodes.values()) {
    const first = [...paths].sort()[0]!;
    for (const p of paths) entries.find((e) => e.path === p)!.linkGroup = first;
  }
  const xattrs = blocks(
    String((await execa('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '.'], { cwd: root })).stdout),
  );
  const acls = blocks(String((await execa('getfacl', ['-R', '-P', '-n', '-s', '.'], { cwd: root })).stdout));
  const flags = new Map<string, string>();
  const ls = await execa('lsattr', ['-R', '-a', '.'], { cwd: root, reject: false });
  for (const m of String(ls.stdout).matchAll(/^(\S+) \.\/(.*)$/gm)) flags.set(m[2]!, m[1]!);
  for (const e of entries) {
    if (flags.has(e.path)) e.flags = flags.get(e.path);
    e.xattrs = [...(xattrs.get(e.path) ?? [])].sort();
    const acl = acls.get(e.path);
    if (acl) e.acl = acl;
  }
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export function treeDigestHash(entries: TreeEntry[]): string {
  return createHash('sha256').update(JSON.stringify(entries)).digest('hex');
}

const MiB = 1024 * 1024;

/** Populate `root` (an empty, mounted filesystem) with every kind of thing treeDigest compares. */
export async function buildRichTree(root: string, opts: { bulkBytes: number }): Promise<void> {
  const d = (p: string) => join(root, p);
  for (const dir of ['data', 'bulk', 'links', 'special', 'perm', 'shared', 'acl']) await mkdir(d(dir));
  await writeFile(d('data/a.txt'), 'alpha\n');
  await writeFile(d('data/b.bin'), randomBytes(100_000));
  await writeFile(d('data/empty'), '');
  // Bulk content: twice bulkBytes in 8 MiB files, then every other file deleted, so what stays is
  // spread over the filesystem as on a used one (a shrink must move it). Written a MiB at a time.
  const bulk: string[] = [];
  for (let i = 0, left = 2 * opts.bulkBytes; left > 0; i++) {
    const path = d(`bulk/f${i}`);
    const fh = await open(path, 'w');
    const n = Math.min(left, 8 * MiB);
    for (let off = 0; off < n; off += MiB) await fh.write(randomBytes(Math.min(MiB, n - off)));
    await fh.close();
    bulk.push(path);
    left -= n;
  }
  for (const path of bulk.filter((_, i) => i % 2 === 0)) await unlink(path);
  // Sparse: 64 MiB long, 2 MiB of data in two places.
  const sp = await open(d('data/sparse.img'), 'w');
  await sp.truncate(64 * MiB);
  await sp.write(randomBytes(MiB), 0, MiB, 10 * MiB);
  await sp.write(randomBytes(MiB), 0, MiB, 63 * MiB);
  await sp.close();
  await link(d('data/a.txt'), d('links/a-hard'));
  await link(d('data/b.bin'), d('shared/b-hard1'));
  await link(d('data/b.bin'), d('shared/b-hard2'));
  await symlink('../data/a.txt', d('links/a-sym'));
  await symlink('/nowhere/at/all', d('links/dangling'));
  await execa('mkfifo', [d('special/fifo')]);
  await execa('mknod', [d('special/null'), 'c', '1', '3']);
  await execa('mknod', [d('special/loop99'), 'b', '7', '99']);
  await writeFile(d('perm/suid'), '#!/bin/sh\n');
  await chmod(d('perm/suid'), 0o4755);
  await writeFile(d('perm/sgid'), 'x');
  await chmod(d('perm/sgid'), 0o2711);
  await mkdir(d('perm/tmp'));
  await chmod(d('perm/tmp'), 0o1777);
  await writeFile(d('perm/private'), 'secret\n');
  await chmod(d('perm/private'), 0o600);
  await chown(d('perm/private'), 1234, 5678);
  await chown(d('perm/tmp'), 4321, 100);
  await execa('chown', ['-h', '2345:6789', d('links/a-sym')]);
  await execa('setfattr', ['-n', 'user.comment', '-v', 'kept', d('data/a.txt')]);
  await execa('setfattr', ['-n', 'user.bin', '-v', '0x00ff10', d('data/b.bin')]);
  await execa('setfattr', ['-n', 'trusted.p2v', '-v', 'root-only', d('data/a.txt')]);
  await execa('setfattr', ['-n', 'security.selinux', '-v', 'system_u:object_r:etc_t:s0', d('data/a.txt')]);
  await execa('setfattr', ['-n', 'security.selinux', '-v', 'system_u:object_r:tmp_t:s0', d('perm/tmp')]);
  await writeFile(d('acl/file'), 'acl\n');
  await execa('setfacl', ['-m', 'u:1234:rwx,g:5678:r-x', d('acl/file')]);
  await execa('setfacl', ['-d', '-m', 'u:1234:rwx', d('acl')]);
  // Inode flags: an immutable file (an admin's chattr +i /etc/resolv.conf) and an append-only log.
  await writeFile(d('perm/immutable'), 'fixed\n');
  await writeFile(d('perm/append-only'), 'log\n');
  // Timestamps last, deepest first, so no later write moves them.
  const when = (n: number) => new Date(Date.UTC(2019, 0, 1 + n, 12, 0, 0, 123));
  const all = (await treeDigest(root)).reverse();
  let n = 0;
  for (const e of all) {
    const t = when(n++);
    await (e.type === 'symlink' ? lutimes : utimes)(e.path === '.' ? root : d(e.path), t, t);
  }
  // The flags after the times: an immutable file's times cannot be set (chattr changes only ctime).
  await execa('chattr', ['+i', d('perm/immutable')]);
  await execa('chattr', ['+a', d('perm/append-only')]);
}
