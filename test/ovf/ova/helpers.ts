/**
 * Helpers for the OVA tests: a minimal descriptor codec (the real one lives in
 * ovf/descriptor/ and is injected the same way by the CLIs), a tar builder for
 * hand-made (and hostile) archives, and small stream utilities.
 */
import { createHash } from 'node:crypto';
import tar from 'tar-stream';
import type { MachineDescription, OvfFile } from '../../../ovf/types.js';

export const FIXTURES = '/work/shared/reference/peer-fixtures/ganeti-ovfdata';

/** A small OVF envelope whose References list `files` (ovf:size / ovf:chunkSize when set). */
export function testDescriptor(files: OvfFile[]): string {
  const refs = files
    .map((f) => {
      const attrs = [`ovf:href="${f.href}"`, `ovf:id="${f.id}"`];
      if (f.size !== undefined) attrs.push(`ovf:size="${f.size}"`);
      if (f.chunkSize !== undefined) attrs.push(`ovf:chunkSize="${f.chunkSize}"`);
      return `    <File ${attrs.join(' ')}/>\n`;
    })
    .join('');
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">\n' +
    `  <References>\n${refs}  </References>\n` +
    '  <VirtualSystem ovf:id="test"><Info>test</Info></VirtualSystem>\n' +
    '</Envelope>\n'
  );
}

/** Reads the References of any descriptor (ours, Ganeti's, ovftool's); enough for the OVA layer. */
export function parseTestDescriptor(xml: string): MachineDescription {
  if (!/<(\w+:)?Envelope[\s>]/.test(xml)) throw new Error('no OVF Envelope');
  const files: OvfFile[] = [];
  for (const m of xml.matchAll(/<(?:\w+:)?File\s([^>]*?)\/?>/g)) {
    const attr = (n: string) => new RegExp(`ovf:${n}="([^"]*)"`).exec(m[1]!)?.[1];
    const f: OvfFile = { id: attr('id')!, href: attr('href')! };
    if (attr('size') !== undefined) f.size = Number(attr('size'));
    if (attr('chunkSize') !== undefined) f.chunkSize = Number(attr('chunkSize'));
    if (attr('compression') === 'gzip') f.compression = 'gzip';
    files.push(f);
  }
  return { name: 'test', cpus: 1, memoryMiB: 512, files, disks: [], networks: [], nics: [] };
}

export interface TarMember {
  name: string;
  data?: Buffer | string;
  type?: 'file' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo' | 'directory';
  linkname?: string;
}

/** A tar archive of `members`, built by tar-stream (so it is independent of our writer); `end: false` leaves out the end marker. */
export async function tarOf(members: TarMember[], opts: { end?: boolean } = {}): Promise<Buffer> {
  const pack = tar.pack();
  const out: Buffer[] = [];
  const collected = (async () => {
    for await (const b of pack) out.push(Buffer.from(b as Uint8Array));
  })();
  for (const m of members) {
    const data = m.data === undefined ? Buffer.alloc(0) : Buffer.from(m.data);
    const type = m.type ?? 'file';
    await new Promise<void>((resolve, reject) => {
      if (type === 'file')
        pack.entry({ name: m.name, size: data.length, type }, data, (e) => (e ? reject(e) : resolve()));
      else
        pack.entry({ name: m.name, type, ...(m.linkname ? { linkname: m.linkname } : {}) }, (e) =>
          e ? reject(e) : resolve(),
        );
    });
  }
  pack.finalize();
  await collected;
  const all = Buffer.concat(out);
  return opts.end === false ? all.subarray(0, all.length - 1024) : all;
}

export function sha(algorithm: 'sha1' | 'sha256', data: Buffer | string): string {
  return createHash(algorithm).update(data).digest('hex');
}

export async function collect(content: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of content) parts.push(b);
  return Buffer.concat(parts);
}

/** Yields `buf` in pieces of `size` bytes, as a pipe would. */
export async function* pieces(buf: Buffer, size = 65536): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

/** Deterministic pseudo-random bytes (not compressible, not all zero). */
export function noise(length: number, seed = 1): Buffer {
  const b = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}
