import { describe, expect, it } from 'vitest';
import { editArgs, setShellVar } from '../../fixups/text.js';
import { getShellVar } from '../../guest/shell-vars.js';

describe('shell-style assignments', () => {
  it('reads the last uncommented assignment, unquoted', () => {
    const text = 'A=1\n#A=2\nB="x y" # note\nC=\'q\'\nexport D=plain\n';
    expect(getShellVar(text, 'A')).toBe('1');
    expect(getShellVar(text, 'B')).toBe('x y');
    expect(getShellVar(text, 'C')).toBe('q');
    expect(getShellVar(text, 'D')).toBe('plain');
    expect(getShellVar(text, 'E')).toBeUndefined();
  });

  it('rewrites in place keeping quoting, trailing comments and variable references', () => {
    expect(setShellVar('B="x y" # note\n', 'B', 'z')).toBe('B="z" # note\n');
    expect(setShellVar("C='q'\n", 'C', 'a b')).toBe("C='a b'\n");
    expect(setShellVar('T=console\n', 'T', 'console serial')).toBe('T="console serial"\n');
    expect(setShellVar('L="$L quiet"\n', 'L', '$L')).toBe('L="$L"\n');
    expect(setShellVar('L="a \\"b\\""\n', 'L', 'a "b"')).toBe('L="a \\"b\\""\n');
    expect(setShellVar('X=1', 'Y', '2')).toBe('X=1\nY="2"\n');
  });

  it('edits kernel arguments without touching an unchanged line', () => {
    expect(editArgs(' ro  quiet', (a) => a)).toBe(' ro  quiet');
    expect(editArgs(' ro  quiet', (a) => [...a, 'x'])).toBe('ro quiet x');
  });
});
