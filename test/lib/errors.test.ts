import { describe, expect, it } from 'vitest';
import { P2vError, exitCodeFor, formatError, isP2vError } from '../../lib/errors.js';

describe('P2vError', () => {
  it('formats a one-line message with its hint and stderr tail', () => {
    const e = new P2vError('COMMAND_FAILED', 'mounting /dev/loop3: mount failed (exit status 32)', {
      hint: 'check the filesystem with e2fsck',
      stderrTail: 'wrong fs type',
    });
    expect(formatError('p2v-export', e)).toBe(
      'p2v-export: mounting /dev/loop3: mount failed (exit status 32)\n  | wrong fs type\np2v-export: hint: check the filesystem with e2fsck',
    );
    expect(isP2vError(e, 'COMMAND_FAILED')).toBe(true);
    expect(isP2vError(e, 'BAD_OVF')).toBe(false);
  });

  it('maps error classes to exit statuses', () => {
    expect(exitCodeFor(new P2vError('USAGE', 'x'))).toBe(2);
    expect(exitCodeFor(new P2vError('BAD_VMDK', 'x'))).toBe(3);
    expect(exitCodeFor(new P2vError('NBD', 'x'))).toBe(1);
    expect(exitCodeFor(new Error('x'))).toBe(1);
  });
});
