/**
 * Error translation for readOva: whatever the input, gunzip or the tar parser
 * throws becomes one P2vError line saying where the stream was (in the
 * middle of member X, inside the header after X, …).
 *
 *   classifyTarError(e)              → 'ended' | 'bad-header' | 'other'
 *   tarFailure(e, where, inputError) → P2vError (TRUNCATED or BAD_OVA)
 *   inputFailure(e, where)           → P2vError (TRUNCATED, BAD_OVA or IO)
 *   truncatedAt(where)               → P2vError TRUNCATED
 */
import { P2vError } from '../../lib/errors.js';

export const HINT_DAMAGED = 'the OVA was damaged in transit or edited: discard what was imported and send it again';
export const HINT_TRUNCATED = 'the sender stopped early: look at its error messages, then send the OVA again';
const HINT_NOT_OVA = 'give p2v-import the .ova file written by p2v-export or an OVF tool';

/** Where the parse stands, for messages (MemberReader keeps it). */
export interface ParsePosition {
  /** Member whose data is being read, if any. */
  current: string | null;
  /** Last member handed out. */
  lastName: string | null;
}

export type TarFailure = 'ended' | 'bad-header' | 'other';

/**
 * What a tar-stream failure means. The stream errors of streamx (under
 * tar-stream's entries) and of Node carry codes; tar-stream 3.x's own errors
 * are plain Errors whose only distinguishing mark is their text, so those are
 * matched here, in one place, against the exact messages tar-stream 3.2
 * throws (extract.js, headers.js); test/ovf/ova/read-errors.test.ts provokes
 * each one from the real parser, so an upgrade that rewords them fails there.
 */
export function classifyTarError(e: unknown): TarFailure {
  const code = (e as { code?: unknown } | null)?.code;
  // An entry stream is only destroyed under us when the parser died; with no
  // input error and no bad header, that means the input ended.
  if (code === 'STREAM_DESTROYED' || code === 'PREMATURE_CLOSE' || code === 'ERR_STREAM_PREMATURE_CLOSE')
    return 'ended';
  const msg = e instanceof Error ? e.message : '';
  if (msg === 'Unexpected end of data') return 'ended';
  if (msg.startsWith('Invalid tar header') || msg === 'Invalid header' || msg === 'Header exceeds max size')
    return 'bad-header';
  return 'other';
}

export function truncatedAt(where: ParsePosition | undefined, cause?: unknown): P2vError {
  const cur = where?.current;
  const last = where?.lastName;
  const at = cur
    ? `in the middle of ${cur}`
    : last
      ? `inside the tar header after ${last}`
      : 'inside the first tar header';
  return new P2vError('TRUNCATED', `the OVA stream ends ${at}`, { cause, hint: HINT_TRUNCATED });
}

/** A tar-stream or entry-stream failure; an input failure found earlier explains it better. */
export function tarFailure(e: unknown, where: ParsePosition | undefined, inputError: P2vError | null): P2vError {
  if (e instanceof P2vError) return e;
  if (inputError) return inputError;
  switch (classifyTarError(e)) {
    case 'ended':
      return truncatedAt(where, e);
    case 'bad-header':
      if (!where?.lastName) {
        return new P2vError('BAD_OVA', 'not an OVA: the input is neither a tar archive nor a gzip-compressed one', {
          cause: e,
          hint: HINT_NOT_OVA,
        });
      }
      return new P2vError('BAD_OVA', `corrupt tar header after member ${where.lastName}`, {
        cause: e,
        hint: HINT_DAMAGED,
      });
    default:
      return new P2vError('BAD_OVA', `cannot read the OVA: ${e instanceof Error ? e.message : String(e)}`, {
        cause: e,
        hint: HINT_DAMAGED,
      });
  }
}

/** Reading or gunzipping the input failed. zlib's errors carry codes (Z_BUF_ERROR: its input ended early). */
export function inputFailure(e: unknown, where: ParsePosition | undefined): P2vError {
  if (e instanceof P2vError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'Z_BUF_ERROR') return truncatedAt(where, e);
  if (typeof err?.code === 'string' && err.code.startsWith('Z_')) {
    return new P2vError('BAD_OVA', `the OVA's gzip compression is corrupt: ${err.message}`, {
      cause: e,
      hint: HINT_DAMAGED,
    });
  }
  return new P2vError('IO', `cannot read the OVA stream: ${err?.message ?? String(e)}`, {
    cause: e,
    hint: HINT_TRUNCATED,
  });
}
