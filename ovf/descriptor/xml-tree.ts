/**
 * Untrusted XML → a small namespace-resolved tree. xml2js (sax) does the
 * tokenising; this module refuses DTDs before it gets there, caps the size,
 * and reduces xml2js's output to plain nodes whose names are
 * (namespace URI, local name) pairs, so callers never look at prefixes.
 */
import xml2js from 'xml2js';
import { P2vError } from '../../lib/errors.js';

export interface XmlAttr {
  uri: string;
  local: string;
  value: string;
}

export interface XmlNode {
  /** Namespace URI ("" when the element has none). */
  uri: string;
  local: string;
  attrs: XmlAttr[];
  children: XmlNode[];
  /** Character data directly inside the element, entity-decoded. */
  text: string;
}

/** 4 MiB: real descriptors are a few KiB; a bigger one is an attack or a mistake. */
export const DEFAULT_MAX_DESCRIPTOR_BYTES = 4 * 1024 * 1024;

interface RawAttr {
  value?: unknown;
  uri?: unknown;
  local?: unknown;
}
interface RawNode {
  _?: unknown;
  $?: Record<string, RawAttr>;
  $ns?: { uri?: unknown; local?: unknown };
  $$?: unknown[];
}

/** OVF nests about 6 deep; anything near this is built to exhaust the stack. */
export const MAX_DEPTH = 64;
/** Real descriptors have hundreds of tags; xml2js needs seconds for a few hundred thousand. */
export const MAX_TAGS = 50_000;

function tooDeep(): P2vError {
  return new P2vError('BAD_OVF', `the OVF descriptor nests elements more than ${MAX_DEPTH} deep`, {
    hint: 'real descriptors nest a handful of levels; this one may be crafted to attack the parser',
  });
}

function toNode(raw: unknown, depth = 0): XmlNode | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  if (depth > MAX_DEPTH) throw tooDeep();
  const r = raw as RawNode;
  const ns = r.$ns;
  if (!ns || typeof ns.local !== 'string') return undefined;
  const attrs: XmlAttr[] = [];
  for (const a of Object.values(r.$ ?? {})) {
    if (typeof a?.value === 'string' && typeof a.local === 'string') {
      attrs.push({ uri: typeof a.uri === 'string' ? a.uri : '', local: a.local, value: a.value });
    }
  }
  const children: XmlNode[] = [];
  for (const c of Array.isArray(r.$$) ? r.$$ : []) {
    const n = toNode(c, depth + 1);
    if (n) children.push(n);
  }
  return {
    uri: typeof ns.uri === 'string' ? ns.uri : '',
    local: ns.local,
    attrs,
    children,
    text: typeof r._ === 'string' ? r._ : '',
  };
}

/** ", at line L, column C: reason" from sax's multi-line message (its lines count from 0). */
function saxWhere(failure: unknown): string {
  if (!(failure instanceof Error)) return '';
  const m = /^([^\n]*)\nLine: (\d+)\nColumn: (\d+)/.exec(failure.message);
  if (!m) return `: ${failure.message.replace(/\s+/g, ' ').trim()}`;
  return ` at line ${Number(m[2]) + 1}, column ${m[3]}: ${m[1]!.replace(/\.$/, '')}`;
}

/**
 * Parse `xml` into its root node. Throws BAD_OVF for a DOCTYPE or ENTITY
 * declaration (entity expansion and external entities are how XML parsers get
 * attacked; OVF never needs a DTD), for input over `maxBytes`, and for XML
 * that is not well-formed.
 */
export function parseXmlTree(xml: string, maxBytes = DEFAULT_MAX_DESCRIPTOR_BYTES): XmlNode {
  const size = Buffer.byteLength(xml, 'utf8');
  if (size > maxBytes) {
    throw new P2vError('BAD_OVF', `the OVF descriptor is ${size} bytes, over the ${maxBytes}-byte limit`, {
      hint: 'a real descriptor is a few KiB; check that the right file was given',
    });
  }
  // Checked on the raw text, before any parser sees it, so that no DTD is ever processed.
  if (/<!DOCTYPE/i.test(xml) || /<!ENTITY/i.test(xml)) {
    throw new P2vError('BAD_OVF', 'the OVF descriptor contains a DOCTYPE or ENTITY declaration, which is refused', {
      hint: 'OVF descriptors never need a DTD; this one may be crafted to attack the parser',
    });
  }
  // Every tag starts with a raw "<" (text carries "&lt;"), so this bounds the element count before parsing.
  let tags = 0;
  for (let i = xml.indexOf('<'); i !== -1; i = xml.indexOf('<', i + 1)) {
    if (++tags > MAX_TAGS) {
      throw new P2vError('BAD_OVF', `the OVF descriptor has more than ${MAX_TAGS} tags`, {
        hint: 'real descriptors have a few hundred; this one may be crafted to exhaust the parser',
      });
    }
  }
  const text = xml.charCodeAt(0) === 0xfeff ? xml.slice(1) : xml;
  const parser = new xml2js.Parser({
    xmlns: true,
    explicitChildren: true,
    preserveChildrenOrder: true,
    explicitArray: true,
    includeWhiteChars: false,
    async: false,
    strict: true,
  });
  let result: unknown;
  let failure: unknown;
  let done = false;
  // With async: false xml2js calls back before parseString returns.
  parser.parseString(text, (err: unknown, res: unknown) => {
    if (done) return; // xml2js may report a second error after the first
    done = true;
    failure = err;
    result = res;
  });
  if (failure || !done) {
    throw new P2vError('BAD_OVF', `Error while reading .ovf descriptor: not well-formed XML${saxWhere(failure)}`, {
      hint: 'the descriptor is damaged or is not XML; re-export it from the source',
      cause: failure,
    });
  }
  const top = result && typeof result === 'object' ? Object.values(result as Record<string, unknown>)[0] : undefined;
  const root = toNode(top);
  if (!root) {
    throw new P2vError('BAD_OVF', 'Error while reading .ovf descriptor: no root element', {
      hint: 'the descriptor is empty or is not XML',
    });
  }
  return root;
}

/** Children of `node` named (uri, local). */
export function childrenNamed(node: XmlNode, uris: readonly string[], local: string): XmlNode[] {
  return node.children.filter((c) => c.local === local && uris.includes(c.uri));
}

export function childNamed(node: XmlNode, uris: readonly string[], local: string): XmlNode | undefined {
  return node.children.find((c) => c.local === local && uris.includes(c.uri));
}

/** The attribute `local` in one of `uris`, or unqualified as some producers write it. */
export function attr(node: XmlNode, uris: readonly string[], local: string): string | undefined {
  return (
    node.attrs.find((a) => a.local === local && uris.includes(a.uri))?.value ??
    node.attrs.find((a) => a.local === local && a.uri === '')?.value
  );
}
