/**
 * classifyTarError against the real parser: each failure is provoked from
 * tar-stream itself (so a version that rewords its messages fails here, not
 * in the field), and each class becomes the one-line error readOva prints.
 */
import { describe, expect, it } from 'vitest';
import tar from 'tar-stream';
import { P2vError } from '../../../lib/errors.js';
import { classifyTarError, tarFailure, type TarFailure } from '../../../ovf/ova/read-errors.js';

/** A ustar header whose fields are then damaged by `patch`; the checksum is made right again. */
function header(name: string, size: number, type = '0', patch?: (b: Buffer) => void): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0);
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  b.write(size.toString(8).padStart(11, '0') + '\0', 124);
  b.write('00000000000\0', 136);
  b.write(type, 156);
  b.write('ustar\x0000', 257);
  patch?.(b);
  b.fill(' ', 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return b;
}

/** The error tar-stream raises while `bytes` are parsed and every entry read (`stopAfter`: destroy the parser mid-entry). */
async function parserError(bytes: Buffer, stopAfter = false): Promise<unknown> {
  const ex = tar.extract();
  if (stopAfter) ex.write(bytes);
  else ex.end(bytes);
  try {
    for await (const entry of ex) for await (const _ of entry) if (stopAfter) ex.destroy();
  } catch (e) {
    return e;
  }
  throw new Error('tar-stream raised no error');
}

const cases: { name: string; bytes: Buffer; stop?: boolean; message: string; kind: TarFailure; ours: string }[] = [
  {
    name: 'input ends inside a member',
    bytes: Buffer.concat([header('a', 1000), Buffer.alloc(100)]),
    message: 'Unexpected end of data',
    kind: 'ended',
    ours: 'TRUNCATED: the OVA stream ends in the middle of vm.ovf',
  },
  {
    name: 'parser destroyed under an entry',
    bytes: Buffer.concat([header('a', 100_000), Buffer.alloc(1000)]),
    stop: true,
    message: 'Stream was destroyed',
    kind: 'ended',
    ours: 'TRUNCATED: the OVA stream ends in the middle of vm.ovf',
  },
  {
    name: 'bad checksum (not a tar)',
    bytes: Buffer.alloc(512, 7),
    message: 'Invalid tar header. Maybe the tar is corrupted or it needs to be gunzipped?',
    kind: 'bad-header',
    ours: 'BAD_OVA: corrupt tar header after member vm.ovf',
  },
  {
    name: 'unknown magic',
    bytes: header('a', 0, '0', (b) => b.write('xxxxx', 257)),
    message: 'Invalid tar header: unknown format.',
    kind: 'bad-header',
    ours: 'BAD_OVA: corrupt tar header after member vm.ovf',
  },
  {
    name: 'size field that is not a number',
    bytes: header('a', 0, '0', (b) => b.write('99999999999\0', 124)),
    message: 'Invalid header',
    kind: 'bad-header',
    ours: 'BAD_OVA: corrupt tar header after member vm.ovf',
  },
  {
    name: 'PAX header above tar-stream’s limit',
    bytes: header('p', 5 * 1024 * 1024, 'x'),
    message: 'Header exceeds max size',
    kind: 'bad-header',
    ours: 'BAD_OVA: corrupt tar header after member vm.ovf',
  },
];

describe('tar-stream failures', () => {
  for (const c of cases) {
    it(`${c.name} → ${c.kind}`, async () => {
      const e = await parserError(c.bytes, c.stop);
      expect((e as Error).message).toBe(c.message);
      expect(classifyTarError(e)).toBe(c.kind);
      const where = { current: c.kind === 'ended' ? 'vm.ovf' : null, lastName: 'vm.ovf' };
      const ours = tarFailure(e, where, null);
      expect(`${ours.code}: ${ours.message}`).toBe(c.ours);
    });
  }

  it('a bad header before any member says the input is not an OVA', async () => {
    const e = tarFailure(await parserError(Buffer.alloc(512, 7)), { current: null, lastName: null }, null);
    expect(e.message).toBe('not an OVA: the input is neither a tar archive nor a gzip-compressed one');
  });

  it('anything else is BAD_OVA with its text, and an input failure explains the parser’s', () => {
    const other = tarFailure(new Error('odd'), { current: null, lastName: 'vm.ovf' }, null);
    expect([classifyTarError(new Error('odd')), other.code, other.message]).toEqual([
      'other',
      'BAD_OVA',
      'cannot read the OVA: odd',
    ]);
    const cut = new P2vError('IO', 'cannot read the OVA stream: connection reset by peer');
    expect(tarFailure(new Error('Unexpected end of data'), { current: 'd.img', lastName: 'd.img' }, cut)).toBe(cut);
  });
});
