/**
 * Round trips through writeOva → (GNU tar, sha256sum, qemu-img) → readOva, in
 * both modes, with a real streamOptimized VMDK made by qemu-img as one file.
 */
import { describe, expect, it } from 'vitest';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { run, runText } from '../../../lib/run.js';
import { readOva, writeOva, type OvaReadResult } from '../../../ovf/ova/index.js';
import type { OvfFile } from '../../../ovf/types.js';
import { needPrograms } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';
import { collect, noise, parseTestDescriptor, pieces, sha, testDescriptor } from './helpers.js';

const MiB = 1024 * 1024;

/** A raw 8 MiB image with data in a few places, and the same as a streamOptimized VMDK by qemu-img. */
async function makeDisk(dir: string): Promise<{ raw: string; vmdk: string }> {
  const raw = join(dir, 'disk.raw');
  const img = Buffer.alloc(8 * MiB);
  noise(300_000, 7).copy(img, 0);
  noise(1 * MiB, 8).copy(img, 5 * MiB + 4096);
  await writeFile(raw, img);
  const vmdk = join(dir, 'disk.vmdk');
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
  return { raw, vmdk };
}

async function readAll(
  input: AsyncIterable<Buffer> | NodeJS.ReadableStream,
): Promise<{ result: OvaReadResult; got: Map<string, Buffer>; seen: OvfFile[] }> {
  const got = new Map<string, Buffer>();
  const seen: OvfFile[] = [];
  const result = await readOva(input, {
    parseDescriptor: parseTestDescriptor,
    onFile: async (file, content) => {
      seen.push(file);
      got.set(file.href, await collect(content));
    },
  });
  return { result, got, seen };
}

/** `tar -tvf` as [name, size] pairs. */
async function tarList(path: string): Promise<[string, number][]> {
  const out = await runText('tar', ['-tvf', path]);
  return out
    .trim()
    .split('\n')
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return [f[5]!, Number(f[2])];
    });
}

/** Our manifest lines as sha256sum -c input. */
function toSha256sum(manifest: string): string {
  return manifest.replace(/^SHA256\((.+)\)= ([0-9a-f]+)$/gm, '$2  $1');
}

describe('writeOva / readOva', () => {
  it("'file' mode: one member per file, real sizes in the descriptor, GNU tar, sha256sum and qemu-img agree", async () => {
    await needPrograms('qemu-img', 'tar', 'sha256sum', 'xmllint');
    await withTmpDir('ova-file', async (dir) => {
      const { raw, vmdk } = await makeDisk(dir);
      const extra = noise(3 * MiB + 1, 3);
      const ova = join(dir, 'vm.ova');
      let progress = 0;
      const calls: OvfFile[][] = [];
      const res = await writeOva({
        descriptorName: 'vm.ovf',
        descriptor: (files) => {
          calls.push(files.map((f) => ({ ...f })));
          return testDescriptor(files);
        },
        files: [
          { id: 'file1', href: 'disk1.vmdk', content: createReadStream(vmdk, { highWaterMark: 100_000 }) },
          { id: 'file2', href: 'extra.bin', content: pieces(extra, 77_777) },
        ],
        mode: 'file',
        output: ova,
        onProgress: (n) => (progress += n),
      });
      const vmdkBytes = await readFile(vmdk);
      expect(calls).toEqual([
        [
          { id: 'file1', href: 'disk1.vmdk' },
          { id: 'file2', href: 'extra.bin' },
        ],
        [
          { id: 'file1', href: 'disk1.vmdk', size: vmdkBytes.length },
          { id: 'file2', href: 'extra.bin', size: extra.length },
        ],
      ]);
      expect(res.files).toEqual(calls[1]);
      expect(progress).toBe(vmdkBytes.length + extra.length);
      expect(res.bytesWritten).toBe((await readFile(ova)).length);

      const list = await tarList(ova);
      expect(list.map(([n]) => n)).toEqual(['vm.ovf', 'disk1.vmdk', 'extra.bin', 'vm.mf']);
      expect(list[1]![1]).toBe(vmdkBytes.length);
      expect(list[2]![1]).toBe(extra.length);

      const x = join(dir, 'x');
      await run('mkdir', [x]);
      await run('tar', ['-xf', ova, '-C', x]);
      expect(sha('sha256', await readFile(join(x, 'disk1.vmdk')))).toBe(sha('sha256', vmdkBytes));
      expect(sha('sha256', await readFile(join(x, 'extra.bin')))).toBe(sha('sha256', extra));
      const ovf = await readFile(join(x, 'vm.ovf'), 'utf8');
      expect(ovf).toContain(`ovf:href="disk1.vmdk" ovf:id="file1" ovf:size="${vmdkBytes.length}"`);
      expect(ovf).toContain(`ovf:size="${extra.length}"`);
      await run('xmllint', ['--noout', '--nonet', join(x, 'vm.ovf')]);

      const mf = await readFile(join(x, 'vm.mf'), 'utf8');
      expect(mf).toBe(res.manifest);
      expect(mf.split('\n').filter(Boolean)).toHaveLength(3);
      await writeFile(join(x, 'sums'), toSha256sum(mf));
      await run('sha256sum', ['--strict', '-c', 'sums'], { cwd: x });

      const info = JSON.parse(await runText('qemu-img', ['info', '--output=json', join(x, 'disk1.vmdk')]));
      expect(info.format).toBe('vmdk');
      expect(info['virtual-size']).toBe(8 * MiB);
      await run('qemu-img', ['convert', '-O', 'raw', join(x, 'disk1.vmdk'), join(x, 'back.raw')]);
      expect(sha('sha256', await readFile(join(x, 'back.raw')))).toBe(sha('sha256', await readFile(raw)));

      const { result, got, seen } = await readAll(createReadStream(ova));
      expect(result.descriptorName).toBe('vm.ovf');
      expect(result.manifestFound).toBe(true);
      expect(result.verified).toEqual([
        { name: 'vm.ovf', algorithm: 'sha256' },
        { name: 'disk1.vmdk', algorithm: 'sha256' },
        { name: 'extra.bin', algorithm: 'sha256' },
      ]);
      expect(seen).toEqual(calls[1]);
      expect(got.get('disk1.vmdk')!.equals(vmdkBytes)).toBe(true);
      expect(got.get('extra.bin')!.equals(extra)).toBe(true);

      // The same files repacked by GNU tar (gnu, pax and gzip flavours, the
      // manifest after the descriptor as ovftool orders them) read the same.
      for (const [flags, name] of [
        [['--format=gnu'], 're-gnu.ova'],
        [['--format=pax'], 're-pax.ova'],
        [['--format=ustar', '-z'], 're-ustar.ova.gz'],
      ] as const) {
        const re = join(dir, name);
        await run('tar', ['-c', ...flags, '-f', re, '-C', x, 'vm.ovf', 'vm.mf', 'disk1.vmdk', 'extra.bin']);
        const back = await readAll(createReadStream(re));
        expect(back.result.verified.map((v) => v.name)).toEqual(['vm.ovf', 'disk1.vmdk', 'extra.bin']);
        expect(back.got.get('disk1.vmdk')!.equals(vmdkBytes)).toBe(true);
      }

      // The same archive gzip-compressed (as Ganeti ships ova.ova) reads the same.
      const gz = join(dir, 'vm.ova.gz');
      await pipeline(createReadStream(ova), createGzip(), createWriteStream(gz));
      const again = await readAll(createReadStream(gz));
      expect(again.result.verified).toEqual(result.verified);
      expect(again.got.get('extra.bin')!.equals(extra)).toBe(true);
    });
  });

  it("'stream' mode: chunk members of chunkSize, manifest last with one line per chunk, GNU tar and sha256sum agree", async () => {
    await needPrograms('qemu-img', 'tar', 'sha256sum');
    await withTmpDir('ova-stream', async (dir) => {
      const { vmdk } = await makeDisk(dir);
      const vmdkBytes = await readFile(vmdk);
      const extra = noise(3 * MiB + 123, 5);
      const ova = join(dir, 'vm.ova');
      const out = createWriteStream(ova);
      const calls: OvfFile[][] = [];
      const res = await writeOva({
        descriptorName: 'vm.ovf',
        descriptor: (files) => {
          calls.push(files);
          return testDescriptor(files);
        },
        files: [
          { id: 'file1', href: 'disk1.vmdk', content: createReadStream(vmdk) },
          { id: 'file2', href: 'extra.bin', content: pieces(extra, 300_001) },
          { id: 'file3', href: 'empty.bin', content: pieces(Buffer.alloc(0)) },
        ],
        mode: 'stream',
        output: out,
        chunkSize: MiB,
        manifest: 'sha256',
      });
      out.end();
      await finished(out);
      expect(calls).toEqual([
        [
          { id: 'file1', href: 'disk1.vmdk', chunkSize: MiB },
          { id: 'file2', href: 'extra.bin', chunkSize: MiB },
          { id: 'file3', href: 'empty.bin', chunkSize: MiB },
        ],
      ]);
      expect(res.files.map((f) => f.size)).toEqual([vmdkBytes.length, extra.length, 0]);

      const list = await tarList(ova);
      const vmdkChunks = Math.ceil(vmdkBytes.length / MiB);
      expect(vmdkChunks).toBeGreaterThan(1);
      expect(list.map(([n]) => n)).toEqual([
        'vm.ovf',
        ...Array.from({ length: vmdkChunks }, (_, i) => `disk1.vmdk.${String(i).padStart(9, '0')}`),
        'extra.bin.000000000',
        'extra.bin.000000001',
        'extra.bin.000000002',
        'extra.bin.000000003',
        'empty.bin.000000000',
        'vm.mf',
      ]);
      expect(list.filter(([n]) => n.startsWith('extra.bin')).map(([, s]) => s)).toEqual([MiB, MiB, MiB, 123]);

      const x = join(dir, 'x');
      await run('mkdir', [x]);
      await run('tar', ['-xf', ova, '-C', x]);
      const names = (await readdir(x)).sort();
      const join_ = async (prefix: string) =>
        Buffer.concat(
          await Promise.all(names.filter((n) => n.startsWith(prefix + '.')).map((n) => readFile(join(x, n)))),
        );
      expect((await join_('disk1.vmdk')).equals(vmdkBytes)).toBe(true);
      expect((await join_('extra.bin')).equals(extra)).toBe(true);
      const mf = await readFile(join(x, 'vm.mf'), 'utf8');
      expect(mf.split('\n').filter(Boolean)).toHaveLength(list.length - 1);
      await writeFile(join(x, 'sums'), toSha256sum(mf));
      await run('sha256sum', ['--strict', '-c', 'sums'], { cwd: x });

      const { result, got } = await readAll(createReadStream(ova, { highWaterMark: 10_000 }));
      expect(result.verified.map((v) => v.name)).toEqual(list.slice(0, -1).map(([n]) => n));
      expect(got.get('disk1.vmdk')!.equals(vmdkBytes)).toBe(true);
      expect(got.get('extra.bin')!.equals(extra)).toBe(true);
      expect(got.get('empty.bin')!.length).toBe(0);
    });
  });

  it("'stream' mode piped straight into the reader, with the manifest's SHA1 option", async () => {
    const data = noise(5 * MiB + 17, 11);
    const pipe = new PassThrough({ highWaterMark: 16 * 1024 });
    const writing = writeOva({
      descriptorName: 'x.ovf',
      descriptor: testDescriptor,
      files: [{ id: 'f', href: 'd.img', content: pieces(data, 123_456) }],
      mode: 'stream',
      output: pipe,
      chunkSize: 2 * MiB,
      manifest: 'sha1',
    }).then((r) => {
      pipe.end();
      return r;
    });
    const [w, { result, got }] = await Promise.all([writing, readAll(pipe)]);
    expect(w.manifest).toMatch(/^SHA1\(x\.ovf\)= [0-9a-f]{40}\nSHA1\(d\.img\.000000000\)= /);
    expect(result.verified.map((v) => `${v.algorithm}:${v.name}`)).toEqual([
      'sha1:x.ovf',
      'sha1:d.img.000000000',
      'sha1:d.img.000000001',
      'sha1:d.img.000000002',
    ]);
    expect(got.get('d.img')!.equals(data)).toBe(true);
  });

  it("'stream' mode pulls content no faster than the output drains (one chunk ahead at most)", async () => {
    let pulled = 0;
    async function* content(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 64; i++) {
        pulled += 256 * 1024;
        yield Buffer.alloc(256 * 1024, i);
      }
    }
    const out = new PassThrough({ highWaterMark: 64 * 1024 });
    const writing = writeOva({
      descriptorName: 'vm.ovf',
      descriptor: testDescriptor,
      files: [{ id: 'a', href: 'd', content: content() }],
      mode: 'stream',
      output: out,
      chunkSize: MiB,
    });
    await new Promise((r) => setTimeout(r, 100));
    // Nobody reads `out`: the writer holds one chunk and waits for 'drain'.
    expect(pulled).toBeLessThanOrEqual(MiB + 256 * 1024);
    const { got } = await Promise.all([writing.then(() => out.end()), readAll(out)]).then(([, r]) => r);
    expect(got.get('d')!.length).toBe(16 * MiB);
  });

  it('refuses bad names before writing anything', async () => {
    const base = { descriptor: testDescriptor, mode: 'stream' as const, output: new PassThrough() };
    await expect(writeOva({ ...base, descriptorName: '../vm.ovf', files: [] })).rejects.toMatchObject({
      code: 'USAGE',
    });
    await expect(
      writeOva({
        ...base,
        descriptorName: 'vm.ovf',
        files: [{ id: 'a', href: 'sub/d.vmdk', content: pieces(Buffer.alloc(1)) }],
      }),
    ).rejects.toMatchObject({
      code: 'USAGE',
      message: 'cannot put "sub/d.vmdk" in an OVA: a file must be a plain name, not ending in .ovf, .mf or .cert',
    });
    await expect(
      writeOva({
        ...base,
        descriptorName: 'vm.ovf',
        files: [
          { id: 'a', href: 'd', content: pieces(Buffer.alloc(1)) },
          { id: 'b', href: 'd', content: pieces(Buffer.alloc(1)) },
        ],
      }),
    ).rejects.toMatchObject({ code: 'USAGE', message: 'two files of the OVA are named d' });
  });

  it("'file' mode fails clearly, and removes the partial OVA, when the final descriptor outgrows its room", async () => {
    await withTmpDir('ova-grow', async (dir) => {
      const ova = join(dir, 'vm.ova');
      let n = 0;
      const err = await writeOva({
        descriptorName: 'vm.ovf',
        descriptor: (files) => testDescriptor(files) + (n++ ? '<!--' + 'x'.repeat(5000) + '-->' : ''),
        files: [{ id: 'a', href: 'd', content: pieces(Buffer.alloc(10)) }],
        mode: 'file',
        output: ova,
      }).catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: 'BAD_OVF',
        message: expect.stringMatching(
          /^the final OVF descriptor \(\d+ bytes\) does not fit the 1536 bytes reserved for it$/,
        ),
      });
      await expect(readFile(ova)).rejects.toMatchObject({ code: 'ENOENT' });
    });
  });

  it("'stream' mode reports a receiver that went away as IO", async () => {
    const out = new PassThrough({ highWaterMark: 1024 });
    const writing = writeOva({
      descriptorName: 'vm.ovf',
      descriptor: testDescriptor,
      files: [{ id: 'a', href: 'd', content: pieces(noise(4 * MiB)) }],
      mode: 'stream',
      output: out,
      chunkSize: MiB,
    });
    setTimeout(() => out.destroy(new Error('EPIPE: broken pipe')), 20);
    await expect(writing).rejects.toMatchObject({
      code: 'IO',
      message: 'cannot write the OVA stream: EPIPE: broken pipe',
    });
  });
});
