import { describe, expect, it } from 'vitest';
import { formatBytes, parseSize, readSize } from '../../lib/units.js';
import { parseSize as importerParseSize } from '../../importer/size.js';
import { isP2vError } from '../../lib/errors.js';

const G = 2 ** 30;

function thrown(f: () => unknown): { message: string; hint?: string } {
  try {
    f();
  } catch (e) {
    if (!isP2vError(e)) throw e;
    return { message: e.message, hint: e.hint };
  }
  throw new Error('did not throw');
}

describe('readSize: the one size parser', () => {
  it('reads plain bytes and binary suffixes, with or without B / iB', () => {
    for (const [text, bytes] of [
      ['4096', 4096],
      ['12B', 12],
      ['64M', 64 * 2 ** 20],
      ['64 MiB', 64 * 2 ** 20],
      ['20g', 20 * G],
      ['1.5GiB', 1.5 * G],
      ['2TB', 2 * 2 ** 40],
      ['1P', 2 ** 50],
      [' 7K ', 7 * 1024],
    ] as const)
      expect(readSize(text)).toEqual({ ok: true, bytes });
  });

  it('refuses what is not a size', () => {
    for (const text of ['', 'lots', '-1G', '1X', '1.G', 'G', '5iB', '1e3', '0x10', '1 2'])
      expect(readSize(text)).toEqual({ ok: false, problem: 'not-a-size' });
  });

  it('says too-large past 2^53 bytes', () => {
    expect(readSize('9000P')).toEqual({ ok: false, problem: 'too-large' });
  });

  it('rounds by default and floors on request', () => {
    // 1.3K = 1331.2 bytes, 1.7K = 1740.8 bytes
    expect(readSize('1.3K')).toEqual({ ok: true, bytes: 1331 });
    expect(readSize('1.7K')).toEqual({ ok: true, bytes: 1741 });
    expect(readSize('1.7K', { rounding: 'floor' })).toEqual({ ok: true, bytes: 1740 });
  });

  it('accepts 0 unless told not to, and a fraction that settles to 0 counts as 0', () => {
    expect(readSize('0')).toEqual({ ok: true, bytes: 0 });
    expect(readSize('0', { allowZero: false })).toEqual({ ok: false, problem: 'zero' });
    expect(readSize('0.4', { allowZero: false })).toEqual({ ok: false, problem: 'zero' });
    expect(readSize('0.9', { allowZero: false, rounding: 'floor' })).toEqual({ ok: false, problem: 'zero' });
  });
});

describe('parseSize: the exporter options’ wording', () => {
  it('names the option and the text', () => {
    expect(parseSize('4G', '--memory')).toBe(4 * G);
    expect(thrown(() => parseSize('lots', '--memory'))).toEqual({
      message: '--memory "lots" is not a size',
      hint: 'use a number with an optional K, M, G or T suffix (binary units)',
    });
    expect(thrown(() => parseSize('9000P', '--chunk-size')).message).toBe('--chunk-size "9000P" is too large');
    expect(thrown(() => parseSize('0', '--x', { allowZero: false })).message).toBe('--x "0" is zero');
  });
});

describe('importer parseSize: floors, refuses 0, its own wording', () => {
  it('uses the shared parser with the importer rules', () => {
    expect(importerParseSize('1.7K')).toBe(1740);
    expect(importerParseSize('100G', '--disk-size')).toBe(100 * G);
    for (const text of ['0', '0.5', 'lots', '-1G', '9000P'])
      expect(thrown(() => importerParseSize(text, '--max-staging'))).toEqual({
        message: `invalid --max-staging "${text}"`,
        hint: 'give a size such as 100G, 512M or a number of bytes',
      });
  });
});

describe('formatBytes', () => {
  it('fixed style: one decimal above bytes (the progress meter, reports, messages)', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1.0 KiB');
    expect(formatBytes(1536 * 2 ** 20)).toBe('1.5 GiB');
    expect(formatBytes(20 * G)).toBe('20.0 GiB');
    expect(formatBytes(5 * 2 ** 50)).toBe('5120.0 TiB');
  });

  it('compact style: a decimal only below 10 (the --inspect listing)', () => {
    expect(formatBytes(512, { style: 'compact' })).toBe('512 B');
    expect(formatBytes(1536 * 2 ** 20, { style: 'compact' })).toBe('1.5 GiB');
    expect(formatBytes(20 * G, { style: 'compact' })).toBe('20 GiB');
    expect(formatBytes(1024 * 1024, { style: 'compact' })).toBe('1.0 MiB');
  });
});
