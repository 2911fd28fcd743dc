/**
 * Which XFS features a recreated filesystem carries over, as data: xfs_info's
 * table parsed, the mkfs.xfs options that set each feature this xfsprogs
 * knows, and the refusal for anything else.
 *
 *   parseXfsInfo(text): { values, heads }
 *   mkfsXfsArgs(info, newSize): { args } | { refuse }
 *   featureLines(info): string[]   what must read the same on old and new
 */

import { MiB } from './fs-common.js';

/** What mkfs.xfs gives a small filesystem's log (the allowance measureXfs counts for it). */
export const XFS_SMALL_LOG = 64 * MiB;

export interface XfsInfo {
  uuid: string;
  label: string;
  /** xfs_info's key=value pairs, by section: 'meta-data.crc', 'data.bsize', 'log.blocks' … */
  values: Record<string, string>;
  /** The text after each section's "=": 'log' → 'internal log', 'realtime' → 'none', 'naming' → 'version 2'. */
  heads: Record<string, string>;
}

/** Parse xfs_info's table: "section =head   key=value, key=value …", continuation lines start with "=". */
export function parseXfsInfo(text: string): Pick<XfsInfo, 'values' | 'heads'> {
  const values: Record<string, string> = {};
  const heads: Record<string, string> = {};
  let section = '';
  for (const line of text.split('\n')) {
    const m = /^(\S*)\s*=(.*)$/.exec(line);
    if (!m) continue;
    if (m[1]) section = m[1];
    const rest = m[2]!;
    const firstPair = rest.search(/\s[a-z][\w-]*=/);
    if (m[1]) heads[section] = (firstPair < 0 ? rest : rest.slice(0, firstPair)).trim();
    for (const p of rest.matchAll(/(?:^|\s)([a-z][\w-]*)=([^\s,]+)/g)) values[`${section}.${p[1]}`] = p[2]!;
  }
  return { values, heads };
}

/**
 * The features this mkfs.xfs can set, as xfs_info names them, with the option
 * that sets each. Every other key xfs_info shows is a size (changes with the
 * new size) or is listed in IGNORED; a key in neither, set to anything but 0,
 * is a feature we would lose, and recreateXfs refuses.
 */
const SETTABLE: Record<string, (v: string) => string[]> = {
  'meta-data.isize': (v) => ['-i', `size=${v}`],
  'meta-data.sectsz': (v) => ['-s', `size=${v}`],
  'meta-data.attr': (v) => ['-i', `attr=${v}`],
  'meta-data.projid32bit': (v) => ['-i', `projid32bit=${v}`],
  'meta-data.crc': (v) => ['-m', `crc=${v}`],
  'meta-data.finobt': (v) => ['-m', `finobt=${v}`],
  'meta-data.sparse': (v) => ['-i', `sparse=${v}`],
  'meta-data.rmapbt': (v) => ['-m', `rmapbt=${v}`],
  'meta-data.reflink': (v) => ['-m', `reflink=${v}`],
  'meta-data.bigtime': (v) => ['-m', `bigtime=${v}`],
  'meta-data.inobtcount': (v) => ['-m', `inobtcount=${v}`],
  'meta-data.nrext64': (v) => ['-i', `nrext64=${v}`],
  'data.bsize': (v) => ['-b', `size=${v}`],
  'data.imaxpct': (v) => ['-i', `maxpct=${v}`],
  'naming.bsize': (v) => ['-n', `size=${v}`],
  'naming.ascii-ci': (v) => (v === '1' ? ['-n', 'version=ci'] : []),
  'naming.ftype': (v) => ['-n', `ftype=${v}`],
  'log.version': (v) => ['-l', `version=${v}`],
  'log.sectsz': (v) => ['-l', `sectsize=${v}`],
  'log.lazy-count': (v) => ['-l', `lazy-count=${v}`],
};

/**
 * Sizes and placement, which follow from the new size or are chosen anew: AG
 * count and size (mkfs picks them for the new size), stripe units (the old
 * RAID's geometry means nothing on a virtual disk), the log's length (newLogArgs).
 */
const IGNORED = new Set([
  'meta-data.agcount',
  'meta-data.agsize',
  'data.blocks',
  'data.sunit',
  'data.swidth',
  'log.bsize',
  'log.blocks',
  'log.sunit',
  'realtime.extsz',
  'realtime.blocks',
  'realtime.rtextents',
]);

/**
 * The old log's length when it is sensible on the new size: when it is longer
 * than the 64 MiB mkfs.xfs gives a small filesystem (and must give: this
 * mkfs refuses anything shorter, so an older, shorter log becomes 64 MiB) and
 * at most 1/32 of the new size. Otherwise mkfs.xfs chooses for the new size.
 */
function newLogArgs(info: XfsInfo, newSize: number): string[] {
  const logBytes = Number(info.values['log.blocks']) * Number(info.values['log.bsize']);
  return logBytes > XFS_SMALL_LOG && logBytes <= newSize / 32 ? ['-l', `size=${logBytes}`] : [];
}

/** The mkfs.xfs options that rebuild `info`'s features, or the reason it cannot be done. */
export function mkfsXfsArgs(info: XfsInfo, newSize: number): { args: string[] } | { refuse: string } {
  if (info.heads.log !== 'internal log') return { refuse: `its log is on another device (${info.heads.log})` };
  if (info.heads.realtime !== 'none') return { refuse: `it has a realtime section (${info.heads.realtime})` };
  const unknown = Object.entries(info.values).filter(([k, v]) => !SETTABLE[k] && !IGNORED.has(k) && v !== '0');
  if (unknown.length)
    return { refuse: `it uses ${unknown.map(([k, v]) => `${k}=${v}`).join(', ')}, which this mkfs.xfs cannot set` };
  if (info.label.length > 12) return { refuse: `its label "${info.label}" is longer than mkfs.xfs takes` };
  const args = ['-f', '-K', '-m', `uuid=${info.uuid}`, ...(info.label ? ['-L', info.label] : [])];
  for (const [k, v] of Object.entries(info.values)) if (SETTABLE[k]) args.push(...SETTABLE[k](v));
  args.push(...newLogArgs(info, newSize));
  return { args };
}

/** The xfs_info keys that must read the same on the old and the new filesystem. */
export function featureLines(info: XfsInfo): string[] {
  return Object.entries(info.values)
    .filter(([k]) => !IGNORED.has(k))
    .map(([k, v]) => `${k}=${v}`)
    .sort();
}
