/**
 * The member stream of readOva: a member's bytes counted and hashed as they
 * pass (memberBytes), and a referenced file's whole content across its chunk
 * members (fileBytes), with every chunk and size rule checked as early as
 * the tar headers allow: a member whose header already says it does not fit
 * the descriptor's ovf:size is refused before its first byte is read.
 */
import { P2vError } from '../../lib/errors.js';
import type { OvfFile } from '../types.js';
import type { DigestAlgorithm } from '../manifest.js';
import { chunkName, parseChunkName } from './chunk-name.js';
import { Hasher } from './hasher.js';
import type { ManifestBook } from './manifest-book.js';
import { HINT_HOSTILE, type Member, type MemberReader } from './member-reader.js';
import { HINT_DAMAGED } from './read-errors.js';

/** What the member stream needs from the read session. */
export interface MemberContext {
  members: MemberReader;
  book: ManifestBook;
  /** Turn a parser or entry-stream failure into our error. */
  translate: (e: unknown) => P2vError;
  /** The TRUNCATED error for where the parse stands now. */
  truncated: () => P2vError;
}

/**
 * A member's bytes, counted and hashed as they pass. `algorithms` null: not
 * hashed (manifest, certificate); undefined: what the manifest asks, or
 * digestsBeforeManifest while no manifest was seen.
 */
export async function* memberBytes(
  ctx: MemberContext,
  m: Member,
  algorithms: DigestAlgorithm[] | null | undefined,
  href: string | null = null,
): AsyncGenerator<Buffer> {
  let hashes: Hasher | null = null;
  if (algorithms !== null) {
    ctx.book.noteMember(m.name, href);
    const algs = algorithms ?? ctx.book.algorithmsFor(m.name);
    hashes = algs.length ? new Hasher(algs) : null;
  }
  ctx.members.current = m.name;
  let got = 0;
  try {
    for await (const raw of m.stream) {
      const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
      got += buf.length;
      hashes?.update(buf);
      yield buf;
    }
  } catch (e) {
    throw ctx.translate(e);
  }
  if (got !== m.size) throw ctx.truncated();
  ctx.members.current = null;
  if (hashes) ctx.book.record(m.name, hashes.digests());
}

function sizeDisagrees(file: OvfFile, total: number, atLeast = false): P2vError {
  const is = atLeast ? 'is at least' : 'is';
  return new P2vError('BAD_OVA', `${file.href} ${is} ${total} bytes but the descriptor says ${file.size}`, {
    hint: HINT_DAMAGED,
  });
}

/** All bytes of one referenced file, across its chunks, with size and digest checks. */
export async function* fileBytes(
  ctx: MemberContext,
  file: OvfFile,
  first: Member,
  chunked: boolean,
): AsyncGenerator<Buffer> {
  const wholeAlg = chunked ? ctx.book.wholeFileAlgorithm(file.href) : undefined;
  const whole = wholeAlg ? new Hasher([wholeAlg]) : null;
  let member = first;
  let index = 0;
  let total = 0;
  for (;;) {
    if (chunked && member.size > file.chunkSize!) {
      throw new P2vError(
        'BAD_OVA',
        `chunk ${member.name} is ${member.size} bytes, more than the ovf:chunkSize of ${file.chunkSize}`,
        { hint: HINT_HOSTILE },
      );
    }
    // The tar header gives the size before the data: a file that cannot match ovf:size is refused now.
    if (file.size !== undefined && (chunked ? total + member.size > file.size : member.size !== file.size))
      throw sizeDisagrees(file, chunked ? total + member.size : member.size, chunked);
    for await (const buf of memberBytes(ctx, member, undefined, chunked ? file.href : null)) {
      whole?.update(buf);
      total += buf.length;
      yield buf;
    }
    if (!chunked) break;
    const next = await ctx.members.next();
    const c = next ? parseChunkName(next.name) : null;
    if (!next || !c || c.href !== file.href) {
      ctx.members.pushBack(next);
      break;
    }
    if (c.index !== index + 1) {
      throw new P2vError('BAD_OVA', `chunk ${next.name} is out of order: expected ${chunkName(file.href, index + 1)}`, {
        hint: HINT_HOSTILE,
      });
    }
    if (member.size !== file.chunkSize) {
      throw new P2vError(
        'BAD_OVA',
        `chunk ${member.name} is ${member.size} bytes, not the ovf:chunkSize of ${file.chunkSize}, yet more chunks follow`,
        { hint: HINT_HOSTILE },
      );
    }
    member = next;
    index++;
  }
  if (file.size !== undefined && total !== file.size) throw sizeDisagrees(file, total);
  if (whole) ctx.book.record(file.href, whole.digests());
}
