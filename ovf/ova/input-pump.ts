/**
 * pumpInput: the input → (gunzip) → tar parser leg of readOva. It feeds the
 * parser with backpressure (waiting for 'drain'), lets TarTail see every byte
 * (the end-of-archive check), gunzips when the input starts with the gzip
 * magic, and spends each inflated chunk against a GzipBudget. It stops
 * quietly when the parser was destroyed (readOva gave up) and reports any
 * failure through `fail`, which turns it into the P2vError the parser's own
 * failure will be explained by.
 */
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type tar from 'tar-stream';
import { P2vError } from '../../lib/errors.js';
import { drainedOrGone } from '../../lib/writable.js';
import { GzipBudget } from './gzip-budget.js';
import { sniff } from './sniff.js';
import type { TarTail } from './tar-tail.js';
import { HINT_TRUNCATED } from './read-errors.js';

export interface PumpOptions {
  tail: TarTail;
  /** Where the data of the last member the parser announced ends (for the gzip budget). */
  dataEnd: () => number;
  /** Record an input failure as a P2vError (and return it) before the parser is destroyed with it. */
  fail: (e: unknown) => P2vError;
}

export async function pumpInput(
  input: AsyncIterable<Buffer | string>,
  extract: tar.Extract,
  opts: PumpOptions,
): Promise<void> {
  let gunzip: ReturnType<typeof createGunzip> | null = null;
  try {
    const head = await sniff(input);
    if (head.first.length === 0) {
      throw new P2vError('BAD_OVA', 'not an OVA: the input is empty', { hint: HINT_TRUNCATED });
    }
    let bytes: AsyncIterable<Buffer> = head.all;
    let budget: GzipBudget | null = null;
    if (head.first[0] === 0x1f && head.first[1] === 0x8b) {
      budget = new GzipBudget();
      gunzip = createGunzip();
      // pipeline, not pipe: an input error must reach the gunzip stream we iterate.
      bytes = pipeline(Readable.from(budget.counted(head.all)), gunzip, () => undefined);
    }
    for await (const buf of bytes) {
      if (extract.destroyed || extract.destroying) return;
      budget?.spend(buf.length, opts.dataEnd());
      opts.tail.update(buf);
      if (!extract.write(buf)) await drainedOrGone(extract);
    }
    if (!extract.destroyed && !extract.destroying) extract.end(undefined);
  } catch (e) {
    const err = opts.fail(e);
    extract.destroy(err);
    throw err;
  } finally {
    gunzip?.destroy();
  }
}
