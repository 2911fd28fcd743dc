/**
 * The content stream given to onFile. Breaking out of a for-await does not
 * abandon the file: the reader drains the rest afterwards (checking size and
 * digests), since the tar stream cannot move on without reading it.
 */
export class FileContent implements AsyncIterable<Buffer> {
  private finished = false;
  /** Kept so that a consumer swallowing our error cannot make the file look good. */
  private failure: unknown = null;
  constructor(private readonly gen: AsyncGenerator<Buffer>) {}

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return {
      next: () => this.step(),
      return: async () => ({ done: true, value: undefined }),
    };
  }

  async drain(): Promise<void> {
    while (!(await this.step()).done);
  }

  private async step(): Promise<IteratorResult<Buffer>> {
    if (this.failure !== null) throw this.failure;
    if (this.finished) return { done: true, value: undefined };
    try {
      const r = await this.gen.next();
      if (r.done) this.finished = true;
      return r;
    } catch (e) {
      this.failure = e;
      throw e;
    }
  }
}
