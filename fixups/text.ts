/**
 * Line-preserving text edits. Fixups change the lines they mean to change and
 * leave every other byte of a file as it was (comments, spacing, CRLF), so a
 * diff of a fixed file shows exactly the fixup and nothing else.
 */
import { shellAssignment, splitShellWord, unquoteShellWord } from '../guest/shell-vars.js';

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

/**
 * Set `NAME=value` in a shell-style file: the last assignment is rewritten in
 * its own quoting style (read with guest/shell-vars.ts, the reader inspection
 * uses too); when there is none a line is appended.
 */
export function setShellVar(text: string, name: string, value: string): string {
  const ls = lines(text);
  const re = shellAssignment(name);
  for (let i = ls.length - 1; i >= 0; i--) {
    const m = re.exec(ls[i]!);
    if (!m) continue;
    const { word, rest } = splitShellWord(m[2]!);
    if (unquoteShellWord(word) === value) return text;
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
