/**
 * Line-preserving text edits. Fixups change the lines they mean to change and
 * leave every other byte of a file as it was (comments, spacing, CRLF), so a
 * diff of a fixed file shows exactly the fixup and nothing else.
 */

/** Lines of `text`; joining with "\n" gives the text back byte for byte. */
export function lines(text: string): string[] {
  return text.split('\n');
}

/** Append lines at the end of a file, adding the missing final newline first. */
export function appendLines(text: string | null, add: string[]): string {
  const base = text ?? '';
  const sep = base === '' || base.endsWith('\n') ? '' : '\n';
  return base + sep + add.map((l) => l + '\n').join('');
}

/** A line that is blank or a `#` comment. */
export function isComment(line: string): boolean {
  return /^\s*(#|$)/.test(line);
}

/*
 * Values are kept as shell words: inside double quotes `$VAR` and backquotes
 * stay as written (grub.d snippets say GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX
 * console=ttyS0"), only `"` and `\` are escaped, so reading and writing back
 * an assignment changes nothing but the arguments we edit.
 */
const assignment = (name: string) => new RegExp(`^(\\s*(?:export\\s+)?${name}=)(.*)$`);

/** Value of the last uncommented `NAME=value` in a shell-style file, unquoted; undefined when absent. */
export function getShellVar(text: string, name: string): string | undefined {
  let value: string | undefined;
  for (const line of lines(text)) {
    const m = assignment(name).exec(line);
    if (m) value = unquote(splitWord(m[2]!).word);
  }
  return value;
}

/**
 * Set `NAME=value` in a shell-style file: the last assignment is rewritten in
 * its own quoting style; when there is none a line is appended.
 */
export function setShellVar(text: string, name: string, value: string): string {
  const ls = lines(text);
  for (let i = ls.length - 1; i >= 0; i--) {
    const m = assignment(name).exec(ls[i]!);
    if (!m) continue;
    const { word, rest } = splitWord(m[2]!);
    if (unquote(word) === value) return text;
    const q = word.startsWith("'") ? "'" : word.startsWith('"') || /[\s"'$`\\;&|<>()#]/.test(value) ? '"' : '';
    ls[i] = `${m[1]}${quote(value, q)}${rest}`;
    return ls.join('\n');
  }
  return appendLines(text, [`${name}=${quote(value, '"')}`]);
}

function quote(value: string, q: string): string {
  if (q === "'") return `'${value.replace(/'/g, `'\\''`)}'`;
  if (q === '"') return `"${value.replace(/["\\]/g, '\\$&')}"`;
  return value;
}

/** The shell word right after `=` and what follows it on the line (a comment, spaces). */
function splitWord(raw: string): { word: string; rest: string } {
  const q = raw[0];
  if (q === '"' || q === "'") {
    let i = 1;
    while (i < raw.length && raw[i] !== q) i += q === '"' && raw[i] === '\\' ? 2 : 1;
    return { word: raw.slice(0, i + 1), rest: raw.slice(i + 1) };
  }
  const m = /^(\S*)(.*)$/.exec(raw)!;
  return { word: m[1]!, rest: m[2]! };
}

function unquote(s: string): string {
  if (s.startsWith('"') && s.endsWith('"') && s.length >= 2) return s.slice(1, -1).replace(/\\(["\\])/g, '$1');
  if (s.startsWith("'") && s.endsWith("'") && s.length >= 2) return s.slice(1, -1);
  return s;
}

/** Split kernel arguments on whitespace. */
export function splitArgs(args: string): string[] {
  return args.split(/\s+/).filter((a) => a !== '');
}

/**
 * Apply `edit` to a kernel argument string. The string comes back unchanged
 * (spacing included) when the edit changes no argument.
 */
export function editArgs(args: string, edit: (a: string[]) => string[]): string {
  const before = splitArgs(args);
  const after = edit(before);
  if (after.length === before.length && after.every((a, i) => a === before[i])) return args;
  return after.join(' ');
}

/** Sections of an ini-style file: name → [first line index, end index). */
export function iniSections(ls: string[]): { name: string; start: number; end: number }[] {
  const out: { name: string; start: number; end: number }[] = [];
  for (let i = 0; i < ls.length; i++) {
    const m = /^\s*\[([^\]]+)\]\s*$/.exec(ls[i]!);
    if (!m) continue;
    if (out.length > 0) out[out.length - 1]!.end = i;
    out.push({ name: m[1]!.trim(), start: i, end: ls.length });
  }
  return out;
}
