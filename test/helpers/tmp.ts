import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh temporary directory removed after the callback (or kept when P2V_KEEP_TMP=1). */
export async function withTmpDir<T>(prefix: string, body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(process.env.P2V_TEST_TMP ?? tmpdir(), `p2v-${prefix}-`));
  try {
    return await body(dir);
  } finally {
    if (process.env.P2V_KEEP_TMP !== '1') await rm(dir, { recursive: true, force: true });
  }
}
