import { describe, expect, it } from 'vitest';
import { P2vError } from '../../lib/errors.js';
import { withKeptHint } from '../../importer/output-phases.js';

describe('withKeptHint: a failed output says where the import stays', () => {
  it('appends to a hint, or becomes the hint, and keeps the rest of the error', () => {
    const first = new P2vError('IO', 'cannot write /out/a.ova', {
      hint: 'free some space',
      command: 'qemu-img convert',
      stderrTail: 'No space left',
    });
    const e = withKeptHint(first, 'the verified import stays in /srv/p2v/x');
    expect(e).toBeInstanceOf(P2vError);
    expect([e.code, e.message, e.hint, e.command, e.stderrTail, e.cause]).toEqual([
      'IO',
      'cannot write /out/a.ova',
      'free some space; the verified import stays in /srv/p2v/x',
      'qemu-img convert',
      'No space left',
      first,
    ]);
    expect(withKeptHint(new P2vError('IO', 'x'), 'the staged import stays in /d').hint).toBe(
      'the staged import stays in /d',
    );
  });
});
