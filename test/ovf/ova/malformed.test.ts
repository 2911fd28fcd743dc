/**
 * Hostile and broken OVAs, each refused with its exact one-line error. The
 * archives are built with tar-stream (not our writer) so the writer's
 * assumptions do not leak into what the reader is tested against.
 */
import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { encodeTarHeader, readOva, TAR_END, type OvaReadOptions } from '../../../ovf/ova/index.js';
import type { OvfFile } from '../../../ovf/types.js';
import { collect, noise, parseTestDescriptor, pieces, sha, tarOf, testDescriptor, type TarMember } from './helpers.js';

const DISK = noise(3000, 2);
const DISK2 = noise(1500, 3);
const ovf = (files: OvfFile[]) => ({ name: 'vm.ovf', data: testDescriptor(files) });
const ONE = ovf([{ id: 'f1', href: 'disk.vmdk' }]);
const mf = (lines: [string, Buffer | string][], alg: 'sha1' | 'sha256' = 'sha256') => ({
  name: 'vm.mf',
  data: lines.map(([n, d]) => `${alg.toUpperCase()}(${n})= ${sha(alg, d)}\n`).join(''),
});

async function read(archive: Buffer, opts: Partial<OvaReadOptions> = {}, pieceSize = 700) {
  const got = new Map<string, Buffer>();
  const result = await readOva(pieces(archive, pieceSize), {
    parseDescriptor: parseTestDescriptor,
    onFile: async (file, content) => {
      got.set(file.href, await collect(content));
    },
    ...opts,
  });
  return { result, got };
}

async function refused(
  members: TarMember[] | Buffer,
  code: string,
  message: string,
  opts: Partial<OvaReadOptions> = {},
) {
  const archive = Buffer.isBuffer(members) ? members : await tarOf(members);
  await expect(read(archive, opts)).rejects.toMatchObject({ code, message });
}

describe('readOva accepts', () => {
  it('a manifest right after the descriptor (ovftool order) and checks each member at its end', async () => {
    const archive = await tarOf([
      ONE,
      mf([
        ['vm.ovf', ONE.data],
        ['disk.vmdk', DISK],
      ]),
      { name: 'disk.vmdk', data: DISK },
    ]);
    const { result, got } = await read(archive);
    expect(result.verified).toEqual([
      { name: 'vm.ovf', algorithm: 'sha256' },
      { name: 'disk.vmdk', algorithm: 'sha256' },
    ]);
    expect(got.get('disk.vmdk')!.equals(DISK)).toBe(true);
  });

  it('a manifest giving one digest for a whole chunked file', async () => {
    const d = ovf([{ id: 'f1', href: 'disk.vmdk', chunkSize: 1024 }]);
    const archive = await tarOf([
      d,
      mf(
        [
          ['vm.ovf', d.data],
          ['disk.vmdk', DISK],
        ],
        'sha1',
      ),
      { name: 'disk.vmdk.000000000', data: DISK.subarray(0, 1024) },
      { name: 'disk.vmdk.000000001', data: DISK.subarray(1024, 2048) },
      { name: 'disk.vmdk.000000002', data: DISK.subarray(2048) },
    ]);
    const { result, got } = await read(archive);
    expect(result.verified.map((v) => v.name)).toEqual(['vm.ovf', 'disk.vmdk']);
    expect(got.get('disk.vmdk')!.equals(DISK)).toBe(true);
  });

  it('a "./" directory entry and "./"-prefixed names, and reads past a .cert', async () => {
    const archive = await tarOf([
      { name: './', type: 'directory' },
      { name: './vm.ovf', data: ONE.data },
      { name: './disk.vmdk', data: DISK },
      { name: './vm.cert', data: 'certificate' },
    ]);
    const { result, got } = await read(archive);
    expect(result.certificate).toBe('vm.cert');
    expect(result.manifestFound).toBe(false);
    expect(got.get('disk.vmdk')!.equals(DISK)).toBe(true);
  });

  it('checks digests even when the consumer stops reading early', async () => {
    const archive = await tarOf([
      ONE,
      mf([
        ['vm.ovf', ONE.data],
        ['disk.vmdk', DISK2],
      ]),
      { name: 'disk.vmdk', data: DISK },
    ]);
    const err = await readOva(pieces(archive, 100), {
      parseDescriptor: parseTestDescriptor,
      onFile: async (_file, content) => {
        for await (const _ of content) break;
      },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'BAD_MANIFEST', message: 'SHA256 of disk.vmdk does not match the manifest' });
  });
});

describe('readOva refuses', () => {
  const disk = { name: 'disk.vmdk', data: DISK };

  it.each<[string, TarMember[], string, string]>([
    ['path traversal', [ONE, { name: '../evil', data: 'x' }], 'BAD_OVA', 'OVA member "../evil" has an unsafe name'],
    [
      'traversal inside a name',
      [ONE, { name: 'a/../../evil', data: 'x' }],
      'BAD_OVA',
      'OVA member "a/../../evil" has an unsafe name',
    ],
    [
      'an absolute name',
      [ONE, { name: '/etc/passwd', data: 'x' }],
      'BAD_OVA',
      'OVA member "/etc/passwd" has an absolute name',
    ],
    ['a backslash', [ONE, { name: 'a\\b', data: 'x' }], 'BAD_OVA', 'OVA member "a\\\\b" has an unsafe name'],
    [
      'a symlink',
      [ONE, { name: 'disk.vmdk', type: 'symlink', linkname: '/dev/sda' }],
      'BAD_OVA',
      'OVA member "disk.vmdk" is a symbolic link',
    ],
    [
      'a hard link',
      [ONE, { name: 'disk.vmdk', type: 'link', linkname: 'vm.ovf' }],
      'BAD_OVA',
      'OVA member "disk.vmdk" is a hard link',
    ],
    [
      'a device',
      [ONE, { name: 'disk.vmdk', type: 'block-device' }],
      'BAD_OVA',
      'OVA member "disk.vmdk" is a device node',
    ],
    [
      'a character device',
      [ONE, { name: 'disk.vmdk', type: 'character-device' }],
      'BAD_OVA',
      'OVA member "disk.vmdk" is a device node',
    ],
    ['a FIFO', [ONE, { name: 'disk.vmdk', type: 'fifo' }], 'BAD_OVA', 'OVA member "disk.vmdk" is a FIFO'],
    ['a directory', [ONE, { name: 'sub/', type: 'directory' }], 'BAD_OVA', 'OVA member "sub/" is a directory'],
    ['a duplicate member', [ONE, disk, disk], 'BAD_OVA', 'the OVA holds disk.vmdk twice'],
    [
      'an unreferenced member',
      [ONE, disk, { name: 'other.bin', data: 'x' }],
      'BAD_OVA',
      'member other.bin is not referenced by the descriptor',
    ],
    [
      'a missing referenced file',
      [
        ovf([
          { id: 'a', href: 'disk.vmdk' },
          { id: 'b', href: 'disk2.vmdk' },
        ]),
        disk,
      ],
      'BAD_OVA',
      'disk2.vmdk, referenced by vm.ovf, is missing from the OVA',
    ],
    [
      'two descriptors',
      [ONE, { name: 'other.ovf', data: ONE.data }, disk],
      'BAD_OVA',
      'the OVA holds two descriptors: vm.ovf and other.ovf',
    ],
    [
      'a first member that is not a descriptor',
      [disk, ONE],
      'BAD_OVA',
      'not an OVA: its first member disk.vmdk is not an OVF descriptor (.ovf)',
    ],
    ['an archive without members', [], 'BAD_OVA', 'not an OVA: the archive holds no OVF descriptor'],
    [
      'a file of the wrong size',
      [ovf([{ id: 'a', href: 'disk.vmdk', size: 2999 }]), disk],
      'BAD_OVA',
      'disk.vmdk is 3000 bytes but the descriptor says 2999',
    ],
    [
      'an unsafe href',
      [ovf([{ id: 'a', href: '../disk.vmdk' }]), disk],
      'BAD_OVF',
      'descriptor vm.ovf references an unsafe or external file: "../disk.vmdk"',
    ],
    [
      'a reserved href',
      [ovf([{ id: 'a', href: 'other.mf' }]), disk],
      'BAD_OVF',
      'descriptor vm.ovf references other.mf, a name an OVA keeps for descriptors, manifests and certificates',
    ],
    [
      'a duplicate href',
      [
        ovf([
          { id: 'a', href: 'disk.vmdk' },
          { id: 'b', href: 'disk.vmdk' },
        ]),
        disk,
      ],
      'BAD_OVF',
      'descriptor vm.ovf references disk.vmdk twice',
    ],
    [
      'two manifests',
      [ONE, mf([['vm.ovf', ONE.data]]), { name: 'b.mf', data: 'x' }],
      'BAD_OVA',
      'the OVA holds two manifests (the second is b.mf)',
    ],
  ])('%s', async (_what, members, code, message) => {
    await refused(members, code, message);
  });

  it('a wrong digest, manifest first', async () => {
    await refused(
      [
        ONE,
        mf([
          ['vm.ovf', ONE.data],
          ['disk.vmdk', DISK2],
        ]),
        disk,
      ],
      'BAD_MANIFEST',
      'SHA256 of disk.vmdk does not match the manifest',
    );
  });

  it('a wrong digest, manifest last', async () => {
    await refused(
      [
        ONE,
        disk,
        mf([
          ['vm.ovf', ONE.data],
          ['disk.vmdk', DISK2],
        ]),
      ],
      'BAD_MANIFEST',
      'SHA256 of disk.vmdk does not match the manifest',
    );
  });

  it('a wrong descriptor digest, SHA1, manifest last', async () => {
    await refused(
      [
        ONE,
        disk,
        mf(
          [
            ['vm.ovf', 'other'],
            ['disk.vmdk', DISK],
          ],
          'sha1',
        ),
      ],
      'BAD_MANIFEST',
      'SHA1 of vm.ovf does not match the manifest',
    );
  });

  it('a member the manifest does not list', async () => {
    await refused([ONE, mf([['vm.ovf', ONE.data]]), disk], 'BAD_MANIFEST', 'disk.vmdk is not in the manifest');
    await refused([ONE, disk, mf([['vm.ovf', ONE.data]])], 'BAD_MANIFEST', 'disk.vmdk is not in the manifest');
  });

  it('a manifest listing a file that is not there', async () => {
    await refused(
      [
        ONE,
        disk,
        mf([
          ['vm.ovf', ONE.data],
          ['disk.vmdk', DISK],
          ['ghost.vmdk', 'x'],
        ]),
      ],
      'BAD_MANIFEST',
      'the manifest lists ghost.vmdk, which is not in the OVA',
    );
  });

  it('an OVA without a manifest when one is required', async () => {
    await refused([ONE, disk], 'BAD_MANIFEST', 'the OVA has no manifest (.mf)', { requireManifest: true });
  });

  it('an oversized descriptor or manifest, before reading it', async () => {
    const big = ovf([{ id: 'f1', href: 'disk.vmdk' }]);
    const size = Buffer.byteLength(big.data);
    await refused([big, disk], 'BAD_OVA', `descriptor vm.ovf is ${size} bytes, more than the 100 allowed`, {
      maxDescriptorBytes: 100,
    });
    await refused(
      [ONE, { name: 'vm.mf', data: 'x'.repeat(200) }, disk],
      'BAD_OVA',
      'manifest vm.mf is 200 bytes, more than the 100 allowed',
      { maxManifestBytes: 100 },
    );
  });

  describe('broken chunking', () => {
    const C = ovf([{ id: 'f1', href: 'disk.vmdk', chunkSize: 1024 }]);
    const chunk = (i: number, data = DISK.subarray(i * 1024, (i + 1) * 1024)) => ({
      name: `disk.vmdk.${String(i).padStart(9, '0')}`,
      data,
    });
    it.each<[string, TarMember[], string]>([
      ['a gap', [C, chunk(0), chunk(2)], 'chunk disk.vmdk.000000002 is out of order: expected disk.vmdk.000000001'],
      [
        'a swap',
        [C, chunk(0), chunk(2), chunk(1)],
        'chunk disk.vmdk.000000002 is out of order: expected disk.vmdk.000000001',
      ],
      [
        'a missing first chunk',
        [C, chunk(1)],
        'chunk disk.vmdk.000000001 is out of order: expected disk.vmdk.000000000',
      ],
      ['a duplicate chunk', [C, chunk(0), chunk(1), chunk(1)], 'the OVA holds disk.vmdk.000000001 twice'],
      [
        'a restart after another member',
        [C, chunk(0), { name: 'vm.cert', data: 'c' }, chunk(1)],
        'chunk disk.vmdk.000000001 comes after the end of disk.vmdk',
      ],
      [
        'a short chunk before the last',
        [C, chunk(0, DISK.subarray(0, 1000)), chunk(1)],
        'chunk disk.vmdk.000000000 is 1000 bytes, not the ovf:chunkSize of 1024, yet more chunks follow',
      ],
      [
        'a chunk larger than chunkSize',
        [C, chunk(0, DISK.subarray(0, 2000))],
        'chunk disk.vmdk.000000000 is 2000 bytes, more than the ovf:chunkSize of 1024',
      ],
      [
        'chunks of an unchunked file',
        [ONE, chunk(0)],
        'member disk.vmdk.000000000 is a chunk, but the descriptor gives disk.vmdk no ovf:chunkSize',
      ],
      [
        'a whole member of a chunked file',
        [C, { name: 'disk.vmdk', data: DISK }],
        'disk.vmdk should come in chunks (disk.vmdk.000000000, …): the descriptor gives it an ovf:chunkSize',
      ],
    ])('%s', async (_what, members, message) => {
      await refused(members, 'BAD_OVA', message);
    });

    it('a missing last chunk, caught by the manifest', async () => {
      const all = [chunk(0), chunk(1), chunk(2)];
      const lines: [string, Buffer | string][] = [
        ['vm.ovf', C.data],
        ...all.map((c): [string, Buffer] => [c.name, c.data]),
      ];
      await refused(
        [C, chunk(0), chunk(1), mf(lines)],
        'BAD_MANIFEST',
        'the manifest lists disk.vmdk.000000002, which is not in the OVA',
      );
    });
  });

  describe('truncated streams', () => {
    it.each<[string, (a: Buffer, at: (name: string) => number) => Buffer, string]>([
      [
        'inside a header',
        (a, at) => a.subarray(0, at('disk.vmdk') - 200),
        'the OVA stream ends inside the tar header after vm.ovf',
      ],
      ['inside the first header', (a) => a.subarray(0, 300), 'the OVA stream ends inside the first tar header'],
      ['inside the descriptor', (a) => a.subarray(0, 512 + 100), 'the OVA stream ends in the middle of vm.ovf'],
      [
        'inside a disk',
        (a, at) => a.subarray(0, at('disk.vmdk') + 1000),
        'the OVA stream ends in the middle of disk.vmdk',
      ],
      ['inside the manifest', (a, at) => a.subarray(0, at('vm.mf') + 10), 'the OVA stream ends in the middle of vm.mf'],
      [
        'between members, before the manifest',
        (a, at) => a.subarray(0, at('vm.mf') - 512),
        'the OVA stream ends after disk.vmdk without the tar end-of-archive marker',
      ],
      [
        'inside the end marker',
        (a) => a.subarray(0, a.length - 512),
        'the OVA stream ends after vm.mf without the tar end-of-archive marker',
      ],
    ])('%s', async (_what, cut, message) => {
      const members = [
        ONE,
        disk,
        mf([
          ['vm.ovf', ONE.data],
          ['disk.vmdk', DISK],
        ]),
      ];
      const archive = await tarOf(members);
      // Data offset of a member: after its 512-byte header.
      const at = (name: string) => archive.indexOf(Buffer.from(name + '\0')) + 512;
      await refused(cut(archive, at), 'TRUNCATED', message);
    });

    it('inside a gzip stream', async () => {
      const archive = await tarOf([ONE, disk]);
      const gz = gzipSync(archive);
      await refused(gz.subarray(0, gz.length - 30), 'TRUNCATED', 'the OVA stream ends in the middle of disk.vmdk');
    });
  });

  it('a member of a tar type tar-stream does not know (GNU sparse)', async () => {
    const sparse = encodeTarHeader({ name: 'disk.vmdk', size: 0 });
    sparse[156] = 0x53; // 'S'
    sparse.fill(0x20, 148, 156);
    let sum = 0;
    for (const byte of sparse) sum += byte;
    sparse.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
    const head = await tarOf([ONE], { end: false });
    await refused(
      Buffer.concat([head, sparse, TAR_END]),
      'BAD_OVA',
      'OVA member "disk.vmdk" has an unsupported tar type (unknown)',
    );
  });

  it('garbage', async () => {
    await refused(
      Buffer.from('<html>Not found</html>\n'.repeat(50)),
      'BAD_OVA',
      'not an OVA: the input is neither a tar archive nor a gzip-compressed one',
    );
  });

  it('an empty input', async () => {
    await refused(Buffer.alloc(0), 'BAD_OVA', 'not an OVA: the input is empty');
  });

  it('corrupt gzip data', async () => {
    const gz = gzipSync(await tarOf([ONE, disk]));
    gz.fill(0x55, 40, 60);
    await expect(read(gz)).rejects.toMatchObject({
      code: 'BAD_OVA',
      message: expect.stringMatching(/^the OVA's gzip compression is corrupt: /),
    });
  });
});
