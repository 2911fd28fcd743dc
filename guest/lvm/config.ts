/**
 * LVM2's text metadata ("Text Format Volume Group", lvm.conf's syntax), read
 * into plain nested objects:
 *
 *   name = value            value: "string" | integer | [ value, … ]
 *   name { … }              a section
 *   # comment to the end of the line
 *
 *   parseConfig(text): ConfigSection
 */
import { P2vError } from '../../lib/errors.js';

export type ConfigValue = string | number | ConfigValue[];
export interface ConfigSection {
  [key: string]: ConfigValue | ConfigSection;
}

type Token = { t: 'id' | 'str' | 'num' | 'sym'; v: string };

function syntax(what: string): P2vError {
  return new P2vError('INSPECTION', `LVM metadata text: ${what}`, {
    hint: 'check the volume group on the source with `vgck`; use --lvm-as-is to copy it without inspection',
  });
}

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (/\s/.test(c) || c === '\0') {
      i++;
    } else if ('{}[]=,'.includes(c)) {
      out.push({ t: 'sym', v: c });
      i++;
    } else if (c === '"') {
      let s = '';
      i++;
      for (;;) {
        if (i >= text.length) throw syntax('unterminated string');
        const d = text[i++]!;
        if (d === '"') break;
        s += d === '\\' && i < text.length ? text[i++]! : d;
      }
      out.push({ t: 'str', v: s });
    } else {
      const m = /^[^\s{}[\]=,"#]+/.exec(text.slice(i, i + 4096))!;
      const w = m[0];
      out.push({ t: /^-?\d+(\.\d+)?$/.test(w) ? 'num' : 'id', v: w });
      i += w.length;
    }
  }
  return out;
}

export function parseConfig(text: string): ConfigSection {
  const toks = tokenize(text);
  let p = 0;
  const peek = () => toks[p];
  const expect = (v: string) => {
    const t = toks[p++];
    if (!t || t.t !== 'sym' || t.v !== v) throw syntax(`expected "${v}" near token ${p}`);
  };
  const value = (): ConfigValue => {
    const t = toks[p++];
    if (!t) throw syntax('value expected at the end');
    if (t.t === 'str') return t.v;
    if (t.t === 'num') return Number(t.v);
    if (t.t === 'sym' && t.v === '[') {
      const list: ConfigValue[] = [];
      while (peek()?.v !== ']') {
        list.push(value());
        if (peek()?.v === ',') p++;
        else if (peek()?.v !== ']') throw syntax('"," or "]" expected in a list');
      }
      p++;
      return list;
    }
    throw syntax(`unexpected "${t.v}"`);
  };
  const section = (top: boolean): ConfigSection => {
    const out: ConfigSection = {};
    for (;;) {
      const t = peek();
      if (!t) {
        if (top) return out;
        throw syntax('"}" expected at the end');
      }
      if (t.t === 'sym' && t.v === '}') {
        if (top) throw syntax('unbalanced "}"');
        p++;
        return out;
      }
      if (t.t !== 'id' && t.t !== 'num') throw syntax(`name expected, found "${t.v}"`);
      p++;
      const next = peek();
      if (next?.t === 'sym' && next.v === '{') {
        p++;
        out[t.v] = section(false);
      } else {
        expect('=');
        out[t.v] = value();
      }
    }
  };
  return section(true);
}

export const isSection = (v: ConfigValue | ConfigSection | undefined): v is ConfigSection =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
