/**
 * Reading shell-style assignments (`NAME="value"`) as the guest's own
 * configuration files spell them: /etc/default/grub, /etc/sysconfig/*,
 * /etc/selinux/config. Inspection reads them (kernel command lines for the
 * device map) and fixups read and rewrite them (fixups/text.ts setShellVar
 * keeps the quoting style found here), so the reader lives below both.
 *
 * Values are kept as shell words: inside double quotes `$VAR` and backquotes
 * stay as written (grub.d snippets say GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX
 * console=ttyS0"), only `"` and `\` are unescaped.
 *
 *   getShellVar(text, name): string | undefined
 */

/** `NAME=` at the start of a line, optionally after `export`. */
export const shellAssignment = (name: string): RegExp => new RegExp(`^(\\s*(?:export\\s+)?${name}=)(.*)$`);

/** Value of the last uncommented `NAME=value` in a shell-style file, unquoted; undefined when absent. */
export function getShellVar(text: string, name: string): string | undefined {
  let value: string | undefined;
  const re = shellAssignment(name);
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (m) value = unquoteShellWord(splitShellWord(m[2]!).word);
  }
  return value;
}

/** The shell word right after `=` and what follows it on the line (a comment, spaces). */
export function splitShellWord(raw: string): { word: string; rest: string } {
  const q = raw[0];
  if (q === '"' || q === "'") {
    let i = 1;
    while (i < raw.length && raw[i] !== q) i += q === '"' && raw[i] === '\\' ? 2 : 1;
    return { word: raw.slice(0, i + 1), rest: raw.slice(i + 1) };
  }
  const m = /^(\S*)(.*)$/.exec(raw)!;
  return { word: m[1]!, rest: m[2]! };
}

export function unquoteShellWord(s: string): string {
  if (s.startsWith('"') && s.endsWith('"') && s.length >= 2) return s.slice(1, -1).replace(/\\(["\\])/g, '$1');
  if (s.startsWith("'") && s.endsWith("'") && s.length >= 2) return s.slice(1, -1);
  return s;
}
