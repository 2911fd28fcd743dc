import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatManifest, parseManifest } from '../../../ovf/manifest.js';
import { FIXTURES, sha } from './helpers.js';

const D1 = 'a'.repeat(64);
const D2 = 'B'.repeat(40);

describe('parseManifest', () => {
  it('reads the ovftool spelling', () => {
    const m = parseManifest(`SHA256(vm.ovf)= ${D1}\nSHA1(disk1.vmdk)= ${D2}\n`);
    expect([...m]).toEqual([
      ['vm.ovf', { algorithm: 'sha256', hex: D1 }],
      ['disk1.vmdk', { algorithm: 'sha1', hex: D2.toLowerCase() }],
    ]);
  });

  it('reads the VirtualBox spelling, CRLF and blank lines', () => {
    const m = parseManifest(`SHA256 (vm.ovf) = ${D1}\r\n\r\nSHA512 (a (copy).vmdk) = ${'c'.repeat(128)}\r\n`);
    expect(m.get('vm.ovf')).toEqual({ algorithm: 'sha256', hex: D1 });
    expect(m.get('a (copy).vmdk')).toEqual({ algorithm: 'sha512', hex: 'c'.repeat(128) });
  });

  it("reads Ganeti's ganeti.mf, and its digests are those of the fixture files", () => {
    const m = parseManifest(readFileSync(join(FIXTURES, 'ganeti.mf'), 'utf8'));
    expect(m.size).toBe(2);
    for (const name of ['ganeti.ovf', 'new_disk.vmdk']) {
      expect(m.get(name)!.algorithm).toBe('sha1');
      expect(m.get(name)!.hex).toBe(sha('sha1', readFileSync(join(FIXTURES, name))));
    }
  });

  it("reads wrong_manifest.mf, whose digest of wrong_manifest.ovf is wrong (Ganeti's negative case)", () => {
    const m = parseManifest(readFileSync(join(FIXTURES, 'wrong_manifest.mf'), 'utf8'));
    expect(m.get('wrong_manifest.ovf')!.hex).not.toBe(sha('sha1', readFileSync(join(FIXTURES, 'wrong_manifest.ovf'))));
  });

  it.each([
    ['junk', 'hello world\n', 'manifest line 1 is not "SHA256(file)= digest": "hello world"'],
    [
      'unknown algorithm',
      `MD5(vm.ovf)= ${'a'.repeat(32)}\n`,
      `manifest line 1 is not "SHA256(file)= digest": "MD5(vm.ovf)= ${'a'.repeat(32)}"`,
    ],
    [
      'short digest',
      `\nSHA256(vm.ovf)= ${'a'.repeat(40)}\n`,
      'manifest line 2: a SHA256 digest has 64 hex digits, not 40',
    ],
    [
      'non-hex digest',
      `SHA1(vm.ovf)= ${'g'.repeat(40)}\n`,
      `manifest line 1 is not "SHA256(file)= digest": "SHA1(vm.ovf)= ${'g'.repeat(40)}"`,
    ],
    ['duplicate', `SHA256(a)= ${D1}\nSHA256(a)= ${D1}\n`, 'manifest lists a twice'],
    ['empty', '\n\n', 'the manifest lists no files'],
  ])('rejects %s with BAD_MANIFEST', (_what, text, message) => {
    expect(() => parseManifest(text)).toThrow(expect.objectContaining({ code: 'BAD_MANIFEST', message }));
  });
});

describe('formatManifest', () => {
  it('writes the ovftool spelling and reads back', () => {
    const entries = [
      { name: 'vm.ovf', algorithm: 'sha256' as const, hex: D1 },
      { name: 'disk1.vmdk.000000000', algorithm: 'sha1' as const, hex: 'b'.repeat(40) },
    ];
    const text = formatManifest(entries);
    expect(text).toBe(`SHA256(vm.ovf)= ${D1}\nSHA1(disk1.vmdk.000000000)= ${'b'.repeat(40)}\n`);
    expect([...parseManifest(text)].map(([name, v]) => ({ name, ...v }))).toEqual(entries);
  });

  it('refuses names and digests it cannot write', () => {
    expect(() => formatManifest([{ name: 'a\nb', algorithm: 'sha256', hex: D1 }])).toThrow(
      /cannot write a manifest line/,
    );
    expect(() => formatManifest([{ name: 'a', algorithm: 'sha256', hex: 'abc' }])).toThrow(/not a SHA256 digest/);
  });
});
