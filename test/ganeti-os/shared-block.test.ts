/**
 * The helpers both OS definitions share live once, in
 * ganeti-os/common/p2v-common.sh, and each OS's common.sh carries a copy
 * between markers so that its directory stays self-contained however it is
 * installed (cp -a, the sandbox's install-os, p2v-ganeti-os install). These
 * tests fail when a copy drifts from the source, and prove that sync.sh
 * mends a drifted copy and that both OSes behave alike through the shared
 * code.
 */
import { describe, expect, it } from 'vitest';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { needPrograms } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';

const OS_ROOT = fileURLToPath(new URL('../../ganeti-os/', import.meta.url));
const SOURCE = join(OS_ROOT, 'common/p2v-common.sh');
const SYNC = join(OS_ROOT, 'common/sync.sh');
const OSES = ['p2v-image', 'p2v-target'];
const BEGIN =
  '# ---- BEGIN p2v-common.sh (a copy: edit ganeti-os/common/p2v-common.sh, then run ganeti-os/common/sync.sh) ----\n';
const END = '# ---- END p2v-common.sh ----\n';

function block(commonSh: string, where: string): string {
  const a = commonSh.indexOf(BEGIN);
  const b = commonSh.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${where}: no BEGIN/END p2v-common.sh markers`);
  expect(commonSh.indexOf(BEGIN, a + 1), `${where}: one block only`).toBe(-1);
  return commonSh.slice(a + BEGIN.length, b);
}

describe('the shared block of the OS definitions', () => {
  it('is in each common.sh exactly as in ganeti-os/common/p2v-common.sh', async () => {
    const source = await readFile(SOURCE, 'utf8');
    for (const os of OSES) {
      const f = join(OS_ROOT, os, 'common.sh');
      expect(block(await readFile(f, 'utf8'), f), `${f} differs from ${SOURCE}: run sh ${SYNC}`).toBe(source);
    }
  });

  it('sync.sh rewrites a drifted copy and leaves the rest of common.sh alone', async () => {
    await needPrograms('dash');
    await withTmpDir('p2v-shared-block', async (dir) => {
      for (const os of OSES) await cp(join(OS_ROOT, os), join(dir, os), { recursive: true });
      const f = join(dir, 'p2v-target', 'common.sh');
      const good = await readFile(f, 'utf8');
      const drifted = good.replace("trap 'exit 130' INT", "trap 'exit 1' INT");
      expect(drifted).not.toBe(good);
      await writeFile(f, drifted);
      await execa('dash', [SYNC, join(dir, 'p2v-image'), join(dir, 'p2v-target')]);
      expect(await readFile(f, 'utf8')).toBe(good);
      expect(await readFile(join(dir, 'p2v-image', 'common.sh'), 'utf8')).toBe(
        await readFile(join(OS_ROOT, 'p2v-image', 'common.sh'), 'utf8'),
      );

      // Without markers it refuses rather than guess where the block goes.
      await writeFile(f, good.replace(BEGIN, ''));
      const r = await execa('dash', [SYNC, join(dir, 'p2v-target')], { reject: false });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain('has no BEGIN/END p2v-common.sh markers');
    });
  });

  it('gives both OSes the same entry checks, worded with their own names', async () => {
    await needPrograms('dash');
    const PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
    const run = (os: string, env: Record<string, string>) =>
      execa('dash', [join(OS_ROOT, os, 'rename')], { env: { PATH, ...env }, extendEnv: false, reject: false });
    for (const [os, runBy] of [
      ['p2v-image', 'gnt-instance add, gnt-backup import/export'],
      ['p2v-target', 'gnt-instance add/reinstall'],
    ] as const) {
      const none = await run(os, {});
      expect(none.exitCode).toBe(1);
      expect(none.stderr).toBe(
        `${os} rename: error: OS_API_VERSION is not set\n` +
          `${os} rename: hint: this script is run by Ganeti (${runBy}), not by hand`,
      );
      const v = await run(os, { OS_API_VERSION: '20', OS_VARIANT: 'other' });
      expect(v.stderr).toBe(
        `${os} rename: error: unknown variant 'other'\n${os} rename: hint: use the OS name ${os}+default`,
      );
      const api = await run(os, { OS_API_VERSION: '15' });
      expect(api.stderr).toContain(`hint: install a ${os} matching this Ganeti version`);
    }
  });
});
