/**
 * The decompression budget of gzip-compressed OVAs (issue 13, item 5) and the
 * early size checks it leans on. A 1 MB gzip of 1 GiB of zeros used to cost
 * seconds of CPU before "no descriptor"; now it is refused within a few MiB
 * of output. The assertions are on bytes (what the budget promises), not
 * time; the time is printed for the record.
 */
import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { readOva } from '../../../ovf/ova/index.js';
import { ALLOWANCE, MAX_GAP, MAX_RATIO } from '../../../ovf/ova/gzip-budget.js';
import { encodeTarHeader, tarPadding } from '../../../ovf/ova/index.js';
import { isP2vError } from '../../../lib/errors.js';
import { collect, noise, parseTestDescriptor, pieces, tarOf, testDescriptor } from './helpers.js';

const MiB = 1024 * 1024;
const ZEROS_GZ = gzipSync(Buffer.alloc(MiB), { level: 9 });

/** gzip members one after another (a valid gzip stream): `head`, then `zeroMiB` MiB of zeros, then `tail`. */
async function* gzipped(head: Buffer, zeroMiB: number, tail = Buffer.alloc(0), counter?: { bytes: number }) {
  const parts = [gzipSync(head)];
  for (let i = 0; i < zeroMiB; i++) parts.push(ZEROS_GZ);
  if (tail.length) parts.push(gzipSync(tail));
  for (const p of parts)
    for (let i = 0; i < p.length; i += 4096) {
      const b = p.subarray(i, i + 4096);
      if (counter) counter.bytes += b.length;
      yield b;
    }
}

/** readOva's refusal, with the CPU time it took. */
async function refusal(
  input: AsyncIterable<Buffer>,
  onFile = async (_f: unknown, c: AsyncIterable<Buffer>) => void (await collect(c)),
) {
  const cpu = process.cpuUsage();
  let caught: unknown;
  try {
    await readOva(input, { parseDescriptor: parseTestDescriptor, onFile });
  } catch (e) {
    caught = e;
  }
  const used = process.cpuUsage(cpu);
  expect(isP2vError(caught, 'BAD_OVA'), String(caught)).toBe(true);
  return { message: (caught as Error).message, cpuMs: Math.round((used.user + used.system) / 1000) };
}

describe('a gzip-compressed OVA', () => {
  it('of 1 GiB of zeros (about 1 MB) is refused within MAX_GAP of output', async () => {
    const sent = { bytes: 0 };
    const r = await refusal(gzipped(Buffer.alloc(0), 1024, Buffer.alloc(0), sent));
    const m = /^the gzip-compressed OVA holds (\d+) bytes after byte 0 that belong to no member$/.exec(r.message);
    expect(m, r.message).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(MAX_GAP + MiB);
    // gunzip reads ahead a little; still far from the 1 MB sent.
    expect(sent.bytes).toBeLessThan(256 * 1024);
    console.log(`1 GiB of zeros: refused after ${m![1]} bytes out, ${sent.bytes} bytes in, ${r.cpuMs} ms CPU`);
  });

  it('whose declared disk is mostly zeros is refused at the ratio cap', async () => {
    const size = 512 * MiB;
    const ovf = Buffer.from(testDescriptor([{ id: 'a', href: 'd.img', size }]));
    const head = Buffer.concat([
      encodeTarHeader({ name: 'vm.ovf', size: ovf.length }),
      ovf,
      Buffer.alloc(tarPadding(ovf.length)),
      encodeTarHeader({ name: 'd.img', size }),
    ]);
    let consumed = 0;
    const r = await refusal(gzipped(head, size / MiB), async (_f, c) => {
      for await (const b of c) consumed += b.length;
    });
    const m = /^the gzip-compressed OVA expands more than (\d+):1 \((\d+) bytes gave (\d+) so far\)$/.exec(r.message);
    expect(m, r.message).not.toBeNull();
    expect(Number(m![1])).toBe(MAX_RATIO);
    const [bytesIn, bytesOut] = [Number(m![2]), Number(m![3])];
    expect(bytesOut).toBeLessThanOrEqual(MAX_RATIO * bytesIn + ALLOWANCE + MiB);
    expect(consumed).toBeLessThan(ALLOWANCE + 4 * MiB);
    console.log(`512 MiB zero disk: refused after ${bytesOut} bytes out, ${bytesIn} in, ${r.cpuMs} ms CPU`);
  });

  it('of ordinary content is read whole', async () => {
    const data = Buffer.concat([noise(4 * MiB), Buffer.alloc(4 * MiB)]);
    const archive = await tarOf([
      { name: 'vm.ovf', data: testDescriptor([{ id: 'a', href: 'd.img', size: data.length }]) },
      { name: 'd.img', data },
    ]);
    let got: Buffer | undefined;
    await readOva(pieces(gzipSync(archive, { level: 1 })), {
      parseDescriptor: parseTestDescriptor,
      onFile: async (_f, c) => void (got = await collect(c)),
    });
    expect(got!.equals(data)).toBe(true);
  });
});

describe('sizes known from the tar headers are checked before the data', () => {
  it('a member longer than its ovf:size is refused before its first byte is handed out', async () => {
    const archive = await tarOf([
      { name: 'vm.ovf', data: testDescriptor([{ id: 'a', href: 'd.img', size: 10 }]) },
      { name: 'd.img', data: noise(4 * MiB) },
    ]);
    let seen = 0;
    const r = await refusal(pieces(archive), async (_f, c) => {
      for await (const b of c) seen += b.length;
    });
    expect(r.message).toBe('d.img is 4194304 bytes but the descriptor says 10');
    expect(seen).toBe(0);
  });

  it('chunks adding up to more than ovf:size are refused at the chunk that overflows', async () => {
    const archive = await tarOf([
      { name: 'vm.ovf', data: testDescriptor([{ id: 'a', href: 'd.img', size: 1500, chunkSize: 1000 }]) },
      { name: 'd.img.000000000', data: noise(1000) },
      { name: 'd.img.000000001', data: noise(1000) },
    ]);
    let seen = 0;
    const r = await refusal(pieces(archive), async (_f, c) => {
      for await (const b of c) seen += b.length;
    });
    expect(r.message).toBe('d.img is at least 2000 bytes but the descriptor says 1500');
    expect(seen).toBe(1000);
  });

  it('a certificate is capped like the manifest', async () => {
    const archive = await tarOf([
      { name: 'vm.ovf', data: testDescriptor([]) },
      { name: 'vm.cert', data: Buffer.alloc(2 * MiB) },
    ]);
    expect((await refusal(pieces(archive))).message).toBe(
      'certificate vm.cert is 2097152 bytes, more than the 1048576 allowed',
    );
  });
});
