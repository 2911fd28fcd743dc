import { describe, expect, it } from 'vitest';
import { run, runText, requireProgram } from '../../lib/run.js';
import { P2vError } from '../../lib/errors.js';

describe('run', () => {
  it('returns stdout of a real program', async () => {
    expect(await runText('sh', ['-c', 'echo hello'])).toBe('hello');
  });

  it('turns a failure into COMMAND_FAILED with the command and stderr tail', async () => {
    const e = await run('sh', ['-c', 'echo bad thing >&2; exit 3'], { what: 'testing' }).catch((x) => x);
    expect(e).toBeInstanceOf(P2vError);
    expect(e.code).toBe('COMMAND_FAILED');
    expect(e.message).toBe('testing: sh failed (exit status 3)');
    expect(e.command).toBe("sh -c 'echo bad thing >&2; exit 3'");
    expect(e.stderrTail).toBe('bad thing');
  });

  it('names the Debian package of a missing program', async () => {
    const e = await requireProgram('definitely-not-a-program-p2v').catch((x) => x);
    expect(e.code).toBe('MISSING_PROGRAM');
    expect(e.message).toBe('definitely-not-a-program-p2v is not installed');
  });
});
