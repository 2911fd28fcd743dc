/**
 * Hostile and broken input. Every case starts from a good OVA (qemu-img
 * VMDK, GNU tar) and breaks one thing; each must end with the exact one-line
 * error, exit status 3, nothing in the output directory, and nothing — no
 * `.partial` dir, no complete-looking import — left in staging.
 */
import { deflateSync } from 'node:zlib';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tar from 'tar-stream';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { needPrograms } from '../helpers/programs.js';
import { descriptorXml, makeGoodOva, MiB, runImport, tarOva } from './fixtures.js';

interface TarMember {
  name: string;
  header: number;
  data: number;
  size: number;
}

/** Members of a ustar archive with their offsets. */
function members(buf: Buffer): TarMember[] {
  const out: TarMember[] = [];
  for (let p = 0; p + 512 <= buf.length;) {
    const h = buf.subarray(p, p + 512);
    if (h.every((b) => b === 0)) break;
    const name = h.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
    out.push({ name, header: p, data: p + 512, size });
    p += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

type Entry = {
  name: string;
  type?: 'file' | 'symlink' | 'link' | 'character-device' | 'directory';
  body?: Buffer;
  linkname?: string;
};

/** An archive of arbitrary entries (names and types GNU tar would not write). */
async function pack(entries: Entry[]): Promise<Buffer> {
  const p = tar.pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((res) => p.on('end', () => res()));
  for (const e of entries) {
    const type = e.type ?? 'file';
    if (type === 'file') p.entry({ name: e.name, size: e.body!.length }, e.body!);
    else p.entry({ name: e.name, type, linkname: e.linkname, devmajor: 1, devminor: 3, size: 0 });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** The grains of a streamOptimized VMDK (qemu layout), to rewrite them. */
function splitGrains(vmdk: Buffer): { head: Buffer; grains: { lba: bigint; data: Buffer }[]; tail: Buffer } {
  const overHead = Number(vmdk.readBigUInt64LE(64)) * 512;
  const grains: { lba: bigint; data: Buffer }[] = [];
  let p = overHead;
  for (;;) {
    const size = vmdk.readUInt32LE(p + 8);
    if (size === 0) break;
    grains.push({ lba: vmdk.readBigUInt64LE(p), data: vmdk.subarray(p + 12, p + 12 + size) });
    p += Math.ceil((12 + size) / 512) * 512;
  }
  return { head: vmdk.subarray(0, overHead), grains, tail: vmdk.subarray(p) };
}

function joinGrains(parts: ReturnType<typeof splitGrains>): Buffer {
  const out = [parts.head];
  for (const g of parts.grains) {
    const b = Buffer.alloc(Math.ceil((12 + g.data.length) / 512) * 512);
    b.writeBigUInt64LE(g.lba, 0);
    b.writeUInt32LE(g.data.length, 8);
    g.data.copy(b, 12);
    out.push(b);
  }
  out.push(parts.tail);
  return Buffer.concat(out);
}

let work: string;
let good: { ova: string; dir: string; bytes: Buffer; ovf: Buffer; vmdk: Buffer; members: TarMember[] };

beforeAll(async () => {
  await needPrograms('qemu-img', 'tar');
  work = await mkdtemp(join(tmpdir(), 'p2v-bad-'));
  const g = await makeGoodOva(join(work), { sizes: [4 * MiB] });
  const bytes = await readFile(g.ova);
  good = {
    ova: g.ova,
    dir: work,
    bytes,
    ovf: await readFile(join(work, 'vm.ovf')),
    vmdk: await readFile(join(work, 'disk1.vmdk')),
    members: members(bytes),
  };
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

let n = 0;
/** An OVA of the given members (files written into a fresh dir), tarred by GNU tar with a manifest. */
async function ovaOf(files: [string, Buffer | string][], manifest = true): Promise<Buffer> {
  const dir = join(work, `case${n++}`);
  await mkdir(dir);
  for (const [name, body] of files) await writeFile(join(dir, name), body);
  await tarOva(
    dir,
    join(dir, 'x.ova'),
    files.map(([name]) => name),
    manifest ? 'vm.mf' : undefined,
  );
  return readFile(join(dir, 'x.ova'));
}

const m = (name: string) => good.members.find((x) => x.name === name)!;

interface Case {
  name: string;
  input: () => Promise<Buffer>;
  args?: string[];
  error: string;
  /** Text the hint line must hold. */
  hint?: string;
  status?: number;
}

const cases: Case[] = [
  { name: 'empty input', input: async () => Buffer.alloc(0), error: 'not an OVA: the input is empty' },
  {
    name: 'cut inside the first tar header',
    input: async () => good.bytes.subarray(0, 100),
    error: 'the OVA stream ends inside the first tar header',
    status: 3,
  },
  {
    name: 'cut inside the descriptor',
    input: async () => good.bytes.subarray(0, m('vm.ovf').data + 100),
    error: 'the OVA stream ends in the middle of vm.ovf',
  },
  {
    name: 'cut after the descriptor',
    input: async () => good.bytes.subarray(0, m('disk1.vmdk').header),
    error: 'the OVA stream ends after vm.ovf without the tar end-of-archive marker',
  },
  {
    name: 'cut inside the VMDK header',
    input: async () => good.bytes.subarray(0, m('disk1.vmdk').data + 200),
    error: 'the OVA stream ends in the middle of disk1.vmdk',
  },
  {
    name: 'cut inside the grains',
    input: async () => good.bytes.subarray(0, m('disk1.vmdk').data + Math.floor(m('disk1.vmdk').size / 2)),
    error: 'the OVA stream ends in the middle of disk1.vmdk',
  },
  {
    name: 'cut before the manifest',
    input: async () => good.bytes.subarray(0, m('vm.mf').header),
    error: 'the OVA stream ends after disk1.vmdk without the tar end-of-archive marker',
  },
  {
    name: 'cut before the end-of-archive marker',
    input: async () => good.bytes.subarray(0, m('vm.mf').data + 512),
    error: 'the OVA stream ends after vm.mf without the tar end-of-archive marker',
  },
  {
    name: 'wrong digest in the manifest',
    input: async () => {
      const b = Buffer.from(good.bytes);
      const mf = m('vm.mf');
      const text = b.subarray(mf.data, mf.data + mf.size).toString('latin1');
      const at = text.indexOf('SHA256(disk1.vmdk)= ') + 'SHA256(disk1.vmdk)= '.length;
      b[mf.data + at] = b[mf.data + at] === 0x30 ? 0x31 : 0x30;
      return b;
    },
    error: 'SHA256 of disk1.vmdk does not match the manifest',
  },
  {
    name: 'a grain changed in transit',
    input: async () => {
      const b = Buffer.from(good.bytes);
      // The last byte of the first grain's zlib stream: its Adler-32 check.
      const overHead = Number(good.vmdk.readBigUInt64LE(64)) * 512;
      const size = good.vmdk.readUInt32LE(overHead + 8);
      const at = m('disk1.vmdk').data + overHead + 12 + size - 1;
      b[at] = b[at]! ^ 0xff;
      return b;
    },
    error: 'VMDK grain at byte 65536 (LBA 0) is not valid zlib data: incorrect data check',
  },
  {
    // Decodes fine: only the manifest can tell, after every grain was written to staging.
    name: 'a byte changed that only the digest catches',
    input: async () => {
      const b = Buffer.from(good.bytes);
      const overHead = Number(good.vmdk.readBigUInt64LE(64)) * 512;
      const size = good.vmdk.readUInt32LE(overHead + 8);
      const padding = overHead + 12 + size;
      expect(padding % 512).not.toBe(0);
      const at = m('disk1.vmdk').data + padding;
      b[at] = b[at]! ^ 0x5a;
      return b;
    },
    error: 'SHA256 of disk1.vmdk does not match the manifest',
  },
  {
    name: 'a file not in References',
    input: async () =>
      ovaOf([
        ['vm.ovf', good.ovf],
        ['disk1.vmdk', good.vmdk],
        ['extra.bin', 'x'],
      ]),
    error: 'member extra.bin is not referenced by the descriptor',
  },
  {
    name: 'a ../ member name',
    input: async () =>
      pack([
        { name: 'vm.ovf', body: good.ovf },
        { name: '../disk1.vmdk', body: good.vmdk },
      ]),
    error: 'OVA member "../disk1.vmdk" has an unsafe name',
  },
  {
    name: 'an absolute member name',
    input: async () =>
      pack([
        { name: 'vm.ovf', body: good.ovf },
        { name: '/tmp/disk1.vmdk', body: good.vmdk },
      ]),
    error: 'OVA member "/tmp/disk1.vmdk" has an absolute name',
  },
  {
    name: 'a ../ href in the descriptor',
    input: async () =>
      pack([
        {
          name: 'vm.ovf',
          body: Buffer.from(descriptorXml({ disks: [{ href: '../../etc/disk1.vmdk', capacity: 4 * MiB }] })),
        },
      ]),
    error:
      'unsafe href "../../etc/disk1.vmdk" on File file1 in the OVF descriptor: it climbs out of the package with ".."',
  },
  {
    name: 'an absolute href in the descriptor',
    input: async () =>
      pack([
        { name: 'vm.ovf', body: Buffer.from(descriptorXml({ disks: [{ href: '/etc/shadow', capacity: 4 * MiB }] })) },
      ]),
    error: 'unsafe href "/etc/shadow" on File file1 in the OVF descriptor: it is an absolute path',
  },
  {
    name: 'a symlink member',
    input: async () =>
      pack([
        { name: 'vm.ovf', body: good.ovf },
        { name: 'disk1.vmdk', type: 'symlink', linkname: '/etc/shadow' },
      ]),
    error: 'OVA member "disk1.vmdk" is a symbolic link',
  },
  {
    name: 'a hard link member',
    input: async () =>
      pack([
        { name: 'vm.ovf', body: good.ovf },
        { name: 'disk1.vmdk', type: 'link', linkname: 'vm.ovf' },
      ]),
    error: 'OVA member "disk1.vmdk" is a hard link',
  },
  {
    name: 'a device member',
    input: async () =>
      pack([
        { name: 'vm.ovf', body: good.ovf },
        { name: 'disk1.vmdk', type: 'character-device' },
      ]),
    error: 'OVA member "disk1.vmdk" is a device node',
  },
  {
    name: 'XXE: an external entity',
    input: async () =>
      ovaOf([
        [
          'vm.ovf',
          descriptorXml({
            name: '&xxe;',
            disks: [{ href: 'disk1.vmdk', capacity: 4 * MiB }],
            prolog: '<!DOCTYPE Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n',
          }),
        ],
        ['disk1.vmdk', good.vmdk],
      ]),
    error: 'the OVF descriptor contains a DOCTYPE or ENTITY declaration, which is refused',
  },
  {
    name: 'billion laughs',
    input: async () => {
      let ents = '<!ENTITY l0 "lol">';
      for (let i = 1; i <= 9; i++) ents += `<!ENTITY l${i} "${`&l${i - 1};`.repeat(10)}">`;
      return ovaOf([
        [
          'vm.ovf',
          descriptorXml({
            name: '&l9;',
            disks: [{ href: 'disk1.vmdk', capacity: 4 * MiB }],
            prolog: `<!DOCTYPE Envelope [${ents}]>\n`,
          }),
        ],
        ['disk1.vmdk', good.vmdk],
      ]);
    },
    error: 'the OVF descriptor contains a DOCTYPE or ENTITY declaration, which is refused',
  },
  {
    name: 'a disk above --disk-size',
    input: async () => good.bytes,
    args: ['--disk-size', '2M'],
    error: 'disk vmdisk1 needs 4.0 MiB (4194304 bytes) but at most 2.0 MiB (2097152 bytes) is allowed',
    hint: 'export it again fitted to the limit with p2v-export --target-size 2M',
  },
  {
    name: 'a VMDK bigger than --disk-size when the descriptor gives no capacity',
    input: async () =>
      ovaOf([
        ['vm.ovf', descriptorXml({ disks: [{ href: 'disk1.vmdk' }] })],
        ['disk1.vmdk', good.vmdk],
      ]),
    args: ['--disk-size', '2M'],
    error: 'disk vmdisk1 needs 4.0 MiB (4194304 bytes) but at most 2.0 MiB (2097152 bytes) is allowed',
  },
  {
    name: 'a VMDK capacity disagreeing with the descriptor',
    input: async () =>
      ovaOf([
        ['vm.ovf', descriptorXml({ disks: [{ href: 'disk1.vmdk', capacity: 8 * MiB }] })],
        ['disk1.vmdk', good.vmdk],
      ]),
    error: 'disk vmdisk1: the descriptor says 8388608 bytes but the image holds 4194304',
  },
  {
    name: 'grains out of order',
    input: async () => {
      const parts = splitGrains(good.vmdk);
      [parts.grains[0], parts.grains[1]] = [parts.grains[1]!, parts.grains[0]!];
      return ovaOf([
        ['vm.ovf', good.ovf],
        ['disk1.vmdk', joinGrains(parts)],
      ]);
    },
    error: "VMDK grain marker at byte 66560: LBA 0 does not follow the previous grain's LBA 384",
  },
  {
    name: 'a grain past the capacity',
    input: async () => {
      const parts = splitGrains(good.vmdk);
      parts.grains[parts.grains.length - 1]!.lba = BigInt((4 * MiB) / 512);
      return ovaOf([
        ['vm.ovf', good.ovf],
        ['disk1.vmdk', joinGrains(parts)],
      ]);
    },
    error: 'VMDK grain marker at byte 68608: LBA 8192 is beyond the capacity of 8192 sectors',
  },
  {
    name: 'a grain that inflates beyond one grain',
    input: async () => {
      const parts = splitGrains(good.vmdk);
      parts.grains[0]!.data = deflateSync(Buffer.alloc(2 * 65536, 7));
      return ovaOf([
        ['vm.ovf', good.ovf],
        ['disk1.vmdk', joinGrains(parts)],
      ]);
    },
    error: 'VMDK grain at byte 65536 (LBA 0) inflates to more than one grain of 65536 bytes',
  },
  {
    name: 'an OVF without disks',
    input: async () => ovaOf([['vm.ovf', descriptorXml({ disks: [] })]]),
    error: 'the OVF descriptor describes no disks',
  },
  {
    name: 'two descriptors',
    input: async () =>
      ovaOf([
        ['vm.ovf', good.ovf],
        ['other.ovf', good.ovf],
        ['disk1.vmdk', good.vmdk],
      ]),
    error: 'the OVA holds two descriptors: vm.ovf and other.ovf',
  },
  {
    name: 'non-OVF garbage',
    input: async () => Buffer.from(Array.from({ length: 20000 }, (_, i) => (i * 7919) & 0xff)),
    error: 'not an OVA: the input is neither a tar archive nor a gzip-compressed one',
  },
];

describe('p2v-import refuses bad input', () => {
  it.each(cases)('$name', async (c) => {
    const input = await c.input();
    const dir = join(work, `run${n++}`);
    const staging = join(dir, 'staging');
    const exports = join(dir, 'exports');
    const r = await runImport(['--staging', staging, '--ganeti-export', exports, ...(c.args ?? [])], { input });
    const first = r.stderr.split('\n')[0];
    expect(first).toBe(`p2v-import: ${c.error}`);
    if (c.hint) expect(r.stderr).toContain(c.hint);
    expect(r.exitCode).toBe(c.status ?? 3);
    expect(r.stderr).not.toMatch(/internal error|at .*\.js:\d+/);
    expect(await readdir(staging)).toEqual([]);
    expect(await readdir(exports).catch(() => [])).toEqual([]);
  });
});
