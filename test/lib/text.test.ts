import { describe, expect, it } from 'vitest';
import { formatError, P2vError } from '../../lib/errors.js';
import { memoryLogger } from '../../lib/log.js';
import { printable, printableLines } from '../../lib/text.js';

describe('printable', () => {
  it('writes every control character as a visible escape, so one line stays one line', () => {
    expect(printable('a\nb\rc\td\u001b[2Je\u0007f\u007fg\u0085h\u2028i\u202ej')).toBe(
      'a\\nb\\rc\\td\\e[2Je\\x07f\\x7fg\\x85h\\u2028i\\u202ej',
    );
    expect(printable('plain text: é ü 日本 /dev/sda1')).toBe('plain text: é ü 日本 /dev/sda1');
  });

  it('keeps line breaks only where asked (a program stderr tail), escaping the rest', () => {
    expect(printableLines('one\r\ntwo\u001b]0;x\u0007')).toEqual(['one', 'two\\e]0;x\\x07']);
  });

  it('is applied to every log line and every error message, hint and stderr tail', () => {
    const log = memoryLogger('p2v-import');
    log.warn('member "x\np2v-import: output: /etc/passwd"');
    expect(log.lines).toEqual(['p2v-import: warning: member "x\\np2v-import: output: /etc/passwd"']);
    const text = formatError(
      'p2v-import',
      new P2vError('BAD_OVA', 'bad member "a\u001b[31mb"', { hint: 'see\nthis', stderrTail: 'l1\nl2\u001bc' }),
    );
    expect(text.split('\n')).toEqual([
      'p2v-import: bad member "a\\e[31mb"',
      '  | l1',
      '  | l2\\ec',
      'p2v-import: hint: see\\nthis',
    ]);
    expect(formatError('p2v-import', new Error('x\ny'))).toBe('p2v-import: internal error: x\\ny');
  });
});
