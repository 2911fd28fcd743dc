/**
 * MemberReader: tar-stream's entries one at a time, each checked before
 * anyone sees it (safe relative name, plain file type, no duplicates), with
 * one entry of push-back so a chunked file's reader can look at the next
 * member and leave it for the main loop.
 *
 *   next()        → Member | null (end of archive)        throws BAD_OVA
 *   pushBack(m)     hand `m` out again on the next next()
 *   lastName, current, dataEnd: where the parse is, for errors and the end check
 */
import type tar from 'tar-stream';
import { P2vError } from '../../lib/errors.js';
import { tarPadding } from './tar-header.js';

export const HINT_HOSTILE = 'this OVA was not written by an OVF tool; do not import it';

/** An entry stream of tar-stream's extract (its type is not exported). */
type TarEntry = tar.Extract extends AsyncIterable<infer S> ? S : never;

/** One tar member as the reader hands it around. */
export interface Member {
  name: string;
  size: number;
  stream: AsyncIterable<Buffer>;
}

/**
 * tar-stream's entries, one at a time, each checked before anyone sees it:
 * safe relative name, plain file type, no duplicates.
 */
export class MemberReader {
  private readonly it: AsyncIterator<TarEntry>;
  private pushed: Member | null | undefined = undefined;
  private readonly names = new Set<string>();
  /** Last member handed out, for error messages. */
  lastName: string | null = null;
  /** Member whose data is being read, if any. */
  current: string | null = null;
  /** Offset where the last member's data (and padding) end in the tar stream. */
  dataEnd = 0;

  constructor(
    extract: tar.Extract,
    private readonly translate: (e: unknown) => P2vError,
  ) {
    this.it = extract[Symbol.asyncIterator]();
  }

  pushBack(m: Member | null): void {
    this.pushed = m;
  }

  async next(): Promise<Member | null> {
    if (this.pushed !== undefined) {
      const p = this.pushed;
      this.pushed = undefined;
      return p;
    }
    for (;;) {
      let r: IteratorResult<TarEntry>;
      try {
        r = await this.it.next();
      } catch (e) {
        throw this.translate(e);
      }
      if (r.done) return null;
      const entry = r.value;
      const h = entry.header;
      const size = h.size ?? 0;
      const offset = (h as { byteOffset?: number }).byteOffset ?? 0;
      this.dataEnd = offset + size + tarPadding(size);

      let name = h.name.replace(/^(\.\/)+/, '');
      if (h.type === 'directory') name = name.replace(/\/+$/, '');
      if (h.type === 'directory' && (name === '' || name === '.')) {
        // "./" as written by `tar -C dir .`: harmless.
        for await (const _ of entry) void _;
        continue;
      }
      // tar-stream gives null for types it does not know (GNU sparse 'S', volume 'V', …).
      checkMember(h.name, name, h.type ?? 'unknown');
      if (this.names.has(name)) {
        throw new P2vError('BAD_OVA', `the OVA holds ${name} twice`, { hint: HINT_HOSTILE });
      }
      this.names.add(name);
      this.lastName = name;
      return { name, size, stream: entry as unknown as AsyncIterable<Buffer> };
    }
  }
}

function checkMember(raw: string, name: string, type: string): void {
  const show = JSON.stringify(raw);
  if (raw.startsWith('/'))
    throw new P2vError('BAD_OVA', `OVA member ${show} has an absolute name`, { hint: HINT_HOSTILE });
  if (!isSafeName(name)) throw new P2vError('BAD_OVA', `OVA member ${show} has an unsafe name`, { hint: HINT_HOSTILE });
  switch (type) {
    case 'file':
    case 'contiguous-file':
      return;
    case 'symlink':
      throw new P2vError('BAD_OVA', `OVA member ${show} is a symbolic link`, { hint: HINT_HOSTILE });
    case 'link':
      throw new P2vError('BAD_OVA', `OVA member ${show} is a hard link`, { hint: HINT_HOSTILE });
    case 'character-device':
    case 'block-device':
      throw new P2vError('BAD_OVA', `OVA member ${show} is a device node`, { hint: HINT_HOSTILE });
    case 'fifo':
      throw new P2vError('BAD_OVA', `OVA member ${show} is a FIFO`, { hint: HINT_HOSTILE });
    case 'directory':
      throw new P2vError('BAD_OVA', `OVA member ${show} is a directory`, { hint: HINT_HOSTILE });
    default:
      throw new P2vError('BAD_OVA', `OVA member ${show} has an unsupported tar type (${type})`, { hint: HINT_HOSTILE });
  }
}

/** A relative name that cannot leave the directory it is extracted to. */
export function isSafeName(name: string): boolean {
  if (name === '' || name.startsWith('/') || /[\\\0]/.test(name)) return false;
  return !name.split('/').some((part) => part === '..' || part === '');
}
