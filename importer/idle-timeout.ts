/**
 * --idle-timeout: an input that stops sending without closing (a stalled
 * link with no FIN, a sender frozen mid-stream) would otherwise hold its
 * `.partial` directory and its process forever. Only the time spent waiting
 * for the input counts: while the importer itself is busy (decoding,
 * writing, waiting for the disk), the input is not asked for anything, so a
 * slow staging disk never trips the timeout.
 */
import { P2vError } from '../lib/errors.js';
import { formatDuration } from '../lib/progress.js';

/** 10 minutes without a byte: far beyond any pause of a live sender (it sends as it reads its disks). */
export const DEFAULT_IDLE_TIMEOUT_MS = 10 * 60 * 1000;

/** "10m", "90s", "1h", "2m30s" or plain seconds; "0" turns the timeout off. */
export function parseDuration(text: string, option: string): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const parts = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/i.exec(t);
  if (!parts || t === '' || !Number.isSafeInteger(Number(parts[1] ?? 0))) {
    throw new P2vError('USAGE', `invalid ${option} "${text}"`, {
      hint: 'give a duration such as 10m, 90s, 1h or a number of seconds (0: no timeout)',
    });
  }
  const [h, m, s] = [parts[1], parts[2], parts[3]].map((x) => Number(x ?? 0));
  return ((h! * 60 + m!) * 60 + s!) * 1000;
}

/** `input`, failing with a one-line error once a read waits longer than `ms` (0: never). */
export async function* withIdleTimeout(
  input: AsyncIterable<Buffer> | NodeJS.ReadableStream,
  ms: number,
): AsyncIterable<Buffer> {
  const it = (input as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  if (ms <= 0) {
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    return;
  }
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<'stalled'>((resolve) => (timer = setTimeout(() => resolve('stalled'), ms)));
    const next = it.next();
    // Once stalled, the read may still fail when the input is destroyed: nobody waits for it then.
    next.catch(() => undefined);
    let r: IteratorResult<Buffer> | 'stalled';
    try {
      r = await Promise.race([next, stalled]);
    } finally {
      clearTimeout(timer);
    }
    if (r === 'stalled') {
      // Release the input (a pipe or socket): nothing will be read from it again.
      const destroy = (input as { destroy?: unknown }).destroy;
      if (typeof destroy === 'function') destroy.call(input);
      throw new P2vError('IO', `no data arrived for ${formatDuration(ms / 1000)} (--idle-timeout): import abandoned`, {
        hint: 'the sender or the link stalled: look at the sending side, then send the OVA again',
      });
    }
    if (r.done) return;
    yield r.value;
  }
}
