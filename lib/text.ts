/**
 * Text from outside (OVA member names, descriptor attributes, guest files,
 * a client's command line, a program's stderr) made safe to print: one line
 * stays one line and no terminal escape reaches the admin's terminal. Every
 * message the CLIs print goes through here (lib/log and lib/errors), so a
 * forged `p2v-import: output: …` line or an ESC sequence cannot be injected.
 */

/** C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators and bidi overrides. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\u001b': '\\e' };

/** `s` with every control character written as a visible escape (`\n`, `\e`, `\x07`, `\u2028`). */
export function printable(s: string): string {
  return s.replace(UNSAFE, (c) => {
    const named = NAMED[c];
    if (named) return named;
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** Like printable, but keeps line breaks (for multi-line text such as a program's stderr tail). */
export function printableLines(s: string): string[] {
  return s.split(/\r?\n/).map(printable);
}
