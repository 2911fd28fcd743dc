/**
 * Symlink hijacks of the output place (issue 13, item 1). p2v-import runs as
 * root; the attacker is `nobody`, who may write to the output directories
 * (mode 0777, no sticky bit, so the kernel's protected_symlinks does not
 * help) and list the staging directory. Symbolic links to a victim file and
 * a victim directory are planted at every name the importer uses or used to
 * use — the old `.<name>.p2v-<id>.tmp` names, the final names, guesses of the
 * private work directory, `exports/<name>`, the output directory itself —
 * before the run and, by a watcher reacting to inotify events, during it.
 * Every run must either succeed with regular files or fail with the exact
 * one-line error, and the victim must be unchanged (sha256).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, open, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { cliArgv } from '../helpers/cli.js';
import { withTmpDir } from '../helpers/tmp.js';
import { descriptorXml, MiB, runImport, sha256File, tarOva, toStreamOptimized } from './fixtures.js';

const NAME = 'test-vm';
const NOBODY = 65534;

/** An OVA with one 24 MiB disk holding 16 MiB of incompressible data: writing its outputs takes a while. */
async function makeDataOva(dir: string): Promise<{ ova: string; raw: string }> {
  const raw = join(dir, 'src0.raw');
  const fh = await open(raw, 'w');
  await fh.truncate(24 * MiB);
  for (let off = 0; off < 16 * MiB; off += MiB) await fh.write(randomBytes(MiB), 0, MiB, 4 * MiB + off);
  await fh.close();
  await toStreamOptimized(raw, join(dir, 'disk1.vmdk'));
  await writeFile(
    join(dir, 'vm.ovf'),
    descriptorXml({ name: NAME, disks: [{ href: 'disk1.vmdk', capacity: 24 * MiB }] }),
  );
  const ova = join(dir, 'vm.ova');
  await tarOva(dir, ova, ['vm.ovf', 'disk1.vmdk'], 'vm.mf');
  return { ova, raw };
}

/**
 * The attacker, run as nobody. It watches the staging dir (to learn the
 * import id, for the old temporary names) and each output dir (for the
 * private work dirs) and reacts at once:
 *  - every mode: plant `.<final>.p2v-<id>.tmp` links for the id it sees;
 *    try to write and plant a link inside each new work dir;
 *  - rename-work: move each work dir away and put a link to the victim
 *    directory at its name;
 *  - final-links: put links to the victim at the final names;
 *  - swap-dir: move the output dir away and put a link to the victim
 *    directory at its name.
 * It prints what it managed, as JSON, when told to stop (SIGTERM).
 */
const ATTACKER = `
const fs = require('node:fs');
const path = require('node:path');
const cfg = JSON.parse(process.argv[2]);
const log = { tmpLinks: 0, workSeen: 0, wroteInWork: 0, renamedWork: 0, finalLinks: 0, swapped: 0, errors: [] };
const seen = new Set(cfg.planted);
function tryDo(what, f) { try { f(); return true; } catch (e) { log.errors.push(what + ': ' + e.code); return false; } }
function onStaging(name) {
  const m = /^(.*)\\.partial$/.exec(name || '');
  if (!m || seen.has(name)) return;
  seen.add(name);
  for (const [dir, finals] of Object.entries(cfg.finals))
    for (const f of finals)
      if (tryDo('tmp link', () => fs.symlinkSync(cfg.victimFile, path.join(dir, '.' + f + '.p2v-' + m[1] + '.tmp')))) log.tmpLinks++;
}
function onOutput(dir, name) {
  if (!name || !name.startsWith('.p2v-') || seen.has(name) || name.endsWith('-stolen')) return;
  let st;
  try { st = fs.lstatSync(path.join(dir, name)); } catch { return; }
  if (!st.isDirectory()) return;
  seen.add(name);
  log.workSeen++;
  if (tryDo('write in work', () => fs.writeFileSync(path.join(dir, name, 'evil'), 'x'))) log.wroteInWork++;
  if (tryDo('link in work', () => fs.symlinkSync(cfg.victimFile, path.join(dir, name, cfg.finals[dir][0])))) log.wroteInWork++;
  if (cfg.mode === 'rename-work') setTimeout(() => renameWork(dir, name), cfg.delayMs || 0);
  else if (cfg.mode === 'final-links') {
    for (const f of cfg.finals[dir])
      if (tryDo('final link', () => fs.symlinkSync(cfg.linkTarget, path.join(dir, f)))) log.finalLinks++;
  } else if (cfg.mode === 'swap-dir') {
    if (tryDo('move dir', () => fs.renameSync(dir, dir + '.moved')))
      if (tryDo('link at dir', () => fs.symlinkSync(cfg.victimDir, dir))) log.swapped++;
  }
}
function renameWork(dir, name) {
  {
    if (tryDo('rename work', () => fs.renameSync(path.join(dir, name), path.join(dir, name + '-stolen')))) {
      seen.add(name + '-stolen');
      if (tryDo('link at work', () => fs.symlinkSync(cfg.victimDir, path.join(dir, name)))) log.renamedWork++;
    }
  }
}
fs.watch(cfg.staging, (ev, name) => onStaging(name));
for (const dir of Object.keys(cfg.finals)) fs.watch(dir, (ev, name) => onOutput(dir, name));
process.on('SIGTERM', () => { process.stdout.write(JSON.stringify(log)); process.exit(0); });
process.stdout.write('ready\\n');
`;

interface AttackLog {
  tmpLinks: number;
  workSeen: number;
  wroteInWork: number;
  renamedWork: number;
  finalLinks: number;
  swapped: number;
  errors: string[];
}

interface Attacker {
  child: ChildProcess;
  stop(): Promise<AttackLog>;
}

async function startAttacker(
  dir: string,
  cfg: {
    mode: 'rename-work' | 'final-links' | 'swap-dir' | 'none';
    delayMs?: number;
    staging: string;
    finals: Record<string, string[]>;
    victimFile: string;
    victimDir: string;
    linkTarget?: string;
    planted?: string[];
  },
): Promise<Attacker> {
  const script = join(dir, 'attacker.cjs');
  await writeFile(script, ATTACKER, { mode: 0o644 });
  const child = spawn(process.execPath, [script, JSON.stringify({ planted: [], ...cfg })], {
    uid: NOBODY,
    gid: NOBODY,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  const end = Date.now() + 10_000;
  while (!out.startsWith('ready\n')) {
    if (Date.now() > end || child.exitCode !== null) throw new Error(`attacker did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return {
    child,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      return JSON.parse(out.slice('ready\n'.length)) as AttackLog;
    },
  };
}

/** The test's world: a victim file and dir (root's), output dirs nobody may write, staging nobody may list. */
async function world(dir: string) {
  await chmod(dir, 0o755);
  const victimDir = join(dir, 'victim');
  await mkdir(victimDir, { mode: 0o755 });
  const victimFile = join(victimDir, 'precious');
  await writeFile(victimFile, 'the admin wrote this\n'.repeat(100), { mode: 0o644 });
  const victimSum = await sha256File(victimFile);
  const out = join(dir, 'out');
  await mkdir(out);
  await chmod(out, 0o777);
  const place = (sub: string) => join(out, sub);
  for (const sub of ['exports', 'ova', 'raw', 'qcow2']) {
    await mkdir(place(sub));
    await chmod(place(sub), 0o777);
  }
  // Staging on another filesystem: the Ganeti export and raw outputs are copies, not instant hard links.
  const staging = await execa('mktemp', ['-d', '/dev/shm/p2v-hijack-XXXXXX']).then((r) => r.stdout);
  await chmod(staging, 0o755);
  const victimUnchanged = async () => {
    expect(await sha256File(victimFile)).toBe(victimSum);
    expect(await readdir(victimDir)).toEqual(['precious']);
    expect((await lstat(victimFile)).isFile()).toBe(true);
  };
  return { victimDir, victimFile, out, place, staging, victimUnchanged };
}

const ALL_OUTPUTS = (place: (s: string) => string) => [
  '--ganeti-export',
  place('exports'),
  '--ova',
  join(place('ova'), `${NAME}.ova`),
  '--raw',
  place('raw'),
  '--qcow2',
  place('qcow2'),
];

const FINALS = (place: (s: string) => string): Record<string, string[]> => ({
  [place('exports')]: [NAME],
  [place('ova')]: [`${NAME}.ova`],
  [place('raw')]: [`${NAME}-disk0.raw`],
  [place('qcow2')]: [`${NAME}-disk0.qcow2`],
});

/** Outputs are right: regular files (no link anywhere) with the source's bytes. */
async function outputsGood(place: (s: string) => string, raw: string, dir: string): Promise<void> {
  const exp = join(place('exports'), NAME);
  expect((await lstat(exp)).isDirectory()).toBe(true);
  for (const f of [
    join(exp, 'disk0.raw'),
    join(exp, 'config.ini'),
    join(place('ova'), `${NAME}.ova`),
    join(place('raw'), `${NAME}-disk0.raw`),
    join(place('qcow2'), `${NAME}-disk0.qcow2`),
  ])
    expect((await lstat(f)).isFile(), f).toBe(true);
  const cmp = (b: string, fmt: string) => execa('qemu-img', ['compare', '-q', '-f', 'raw', '-F', fmt, raw, b]);
  await cmp(join(exp, 'disk0.raw'), 'raw');
  await cmp(join(place('raw'), `${NAME}-disk0.raw`), 'raw');
  await cmp(join(place('qcow2'), `${NAME}-disk0.qcow2`), 'qcow2');
  const back = join(dir, 'back');
  await mkdir(back);
  await execa('tar', ['-xf', join(place('ova'), `${NAME}.ova`), '-C', back]);
  await cmp(join(back, `${NAME}-disk1.vmdk`), 'vmdk');
}

/** No work dir (ours or renamed by the attacker) holds anything, and none left under its own name. */
async function nothingHalfBuilt(outDirs: string[]): Promise<void> {
  for (const d of outDirs) {
    for (const e of await readdir(d)) {
      if (!e.startsWith('.p2v-')) continue;
      const st = await lstat(join(d, e));
      if (st.isSymbolicLink()) continue; // the attacker's
      expect(e, `work dir ${join(d, e)} left under its own name`).toMatch(/-stolen$/);
      expect(await readdir(join(d, e))).toEqual([]);
    }
  }
}

describe('p2v-import against symlink hijacks (run as root, attacker as nobody)', () => {
  it('ignores links planted beforehand at work-dir guesses and old temporary names, with every output kind', async () => {
    needRoot();
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('hijack', async (dir) => {
      const src = await makeDataOva(dir);
      const w = await world(dir);
      try {
        const planted: string[] = [];
        for (const [d, finals] of Object.entries(FINALS(w.place))) {
          for (let i = 0; i < 40; i++) {
            const guess = `.p2v-${randomBytes(6).toString('base64url').slice(0, 6)}`;
            await symlink(i % 2 ? w.victimDir : w.victimFile, join(d, guess));
            planted.push(join(d, guess));
          }
          for (const f of finals) {
            // The id is random, but an attacker may try ids in bulk.
            const oldTmp = join(d, `.${f}.p2v-${'0'.repeat(8)}.tmp`);
            await symlink(w.victimFile, oldTmp);
            planted.push(oldTmp);
          }
        }
        const r = await runImport(['--staging', w.staging, ...ALL_OUTPUTS(w.place), '-q'], { inputFile: src.ova });
        expect(r.stderr).toBe('');
        expect(r.exitCode).toBe(0);
        await outputsGood(w.place, src.raw, dir);
        for (const p of planted) expect((await lstat(p)).isSymbolicLink()).toBe(true);
        await nothingHalfBuilt(Object.keys(FINALS(w.place)));
        await w.victimUnchanged();
      } finally {
        await rm(w.staging, { recursive: true, force: true });
      }
    });
  });

  it('refuses a link at a final name, dangling or not, before reading any disk data', async () => {
    needRoot();
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('hijack', async (dir) => {
      const src = await makeDataOva(dir);
      const w = await world(dir);
      try {
        const cases: [string[], string, string][] = [
          [['--ganeti-export', w.place('exports')], join(w.place('exports'), NAME), join(w.victimDir, 'gone')],
          [['--ganeti-export', w.place('exports')], join(w.place('exports'), NAME), w.victimDir],
          [['--ova', join(w.place('ova'), `${NAME}.ova`)], join(w.place('ova'), `${NAME}.ova`), w.victimFile],
          [['--raw', w.place('raw')], join(w.place('raw'), `${NAME}-disk0.raw`), w.victimFile],
          [['--qcow2', w.place('qcow2')], join(w.place('qcow2'), `${NAME}-disk0.qcow2`), w.victimFile],
        ];
        for (const [args, final, target] of cases) {
          await symlink(target, final);
          const r = await runImport(['--staging', w.staging, ...args], { inputFile: src.ova });
          expect(r.stderr.split('\n')[0]).toBe(
            `p2v-import: ${final} is a symbolic link; p2v-import never writes through one`,
          );
          expect(r.exitCode).toBe(1);
          // Refused before data: nothing was staged, nothing kept.
          expect(await readdir(w.staging)).toEqual([]);
          expect((await lstat(final)).isSymbolicLink()).toBe(true);
          await rm(final);
        }
        await nothingHalfBuilt(Object.keys(FINALS(w.place)));
        await w.victimUnchanged();
      } finally {
        await rm(w.staging, { recursive: true, force: true });
      }
    });
  });

  it('refuses an output directory that is a symbolic link', async () => {
    needRoot();
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('hijack', async (dir) => {
      const src = await makeDataOva(dir);
      const w = await world(dir);
      try {
        const linked = join(w.out, 'linked');
        await symlink(w.victimDir, linked);
        for (const args of [
          ['--ganeti-export', linked],
          ['--raw', linked],
          ['--qcow2', linked],
          ['--ova', join(linked, 'x.ova')],
        ]) {
          const r = await runImport(['--staging', w.staging, ...args], { inputFile: src.ova });
          expect(r.stderr.split('\n')[0]).toBe(
            `p2v-import: output directory ${linked} is a symbolic link; p2v-import never writes through one`,
          );
          expect(r.exitCode).toBe(1);
        }
        await w.victimUnchanged();
      } finally {
        await rm(w.staging, { recursive: true, force: true });
      }
    });
  });

  // 30 ms: the attacker moves a work dir the importer already holds (it must go on building in it);
  // 0 ms: it races the importer between mkdtemp and opening the new dir (it must try a fresh one, or refuse).
  for (const delayMs of [30, 0]) {
    it(`keeps building in its own work dir when the attacker moves it ${delayMs} ms after it appears`, async () => {
      needRoot();
      await needPrograms('qemu-img', 'tar');
      await withTmpDir('hijack', async (dir) => {
        const src = await makeDataOva(dir);
        const w = await world(dir);
        const attacker = await startAttacker(dir, {
          mode: 'rename-work',
          delayMs,
          staging: w.staging,
          finals: FINALS(w.place),
          victimFile: w.victimFile,
          victimDir: w.victimDir,
        });
        let log: AttackLog | undefined;
        try {
          const r = await runImport(['--staging', w.staging, ...ALL_OUTPUTS(w.place), '-q'], { inputFile: src.ova });
          log = await attacker.stop();
          if (delayMs > 0 || r.exitCode === 0) {
            expect(r.stderr).toBe('');
            expect(r.exitCode).toBe(0);
            await outputsGood(w.place, src.raw, dir);
            // The work dirs were seen and moved (at least the OVA's, which lives for the whole compression).
            expect(log.workSeen).toBeGreaterThanOrEqual(4);
            expect(log.renamedWork).toBeGreaterThanOrEqual(1);
          } else {
            expect(r.stderr.split('\n')[0]).toMatch(
              /^p2v-import: work directory \/\S+\/out\/exports\/\.p2v-\w{6} was replaced before p2v-import could use it$/,
            );
            expect(r.exitCode).toBe(1);
            expect(log.renamedWork).toBe(5);
          }
          // The old temporary names were planted for the real id, and nothing got into a work dir.
          expect(log.tmpLinks).toBe(4);
          expect(log.wroteInWork).toBe(0);
          await nothingHalfBuilt(Object.keys(FINALS(w.place)));
          await w.victimUnchanged();
        } finally {
          if (!log) await attacker.stop().catch(() => undefined);
          await rm(w.staging, { recursive: true, force: true });
        }
      });
    });
  }

  for (const kind of ['ova', 'qcow2', 'raw', 'ganeti-export'] as const) {
    it(`--${kind}: a link planted at the final name during the run is refused, not followed`, async () => {
      needRoot();
      await needPrograms('qemu-img', 'tar');
      await withTmpDir('hijack', async (dir) => {
        const src = await makeDataOva(dir);
        const w = await world(dir);
        const sub = kind === 'ganeti-export' ? 'exports' : kind;
        const finals = { [w.place(sub)]: FINALS(w.place)[w.place(sub)]! };
        const final = join(w.place(sub), finals[w.place(sub)]![0]!);
        const args = ALL_OUTPUTS(w.place).slice(
          ['ganeti-export', 'ova', 'raw', 'qcow2'].indexOf(kind) * 2,
          ['ganeti-export', 'ova', 'raw', 'qcow2'].indexOf(kind) * 2 + 2,
        );
        const attacker = await startAttacker(dir, {
          mode: 'final-links',
          staging: w.staging,
          finals,
          victimFile: w.victimFile,
          victimDir: w.victimDir,
          linkTarget: kind === 'ganeti-export' ? w.victimDir : w.victimFile,
        });
        let log: AttackLog | undefined;
        try {
          const r = await runImport(['--staging', w.staging, ...args], { inputFile: src.ova });
          log = await attacker.stop();
          expect(log.wroteInWork).toBe(0);
          if (log.finalLinks === 0) {
            // Too late: the output was in place before the link could be made. Then it must be ours and whole.
            expect(r.exitCode).toBe(0);
            expect((await lstat(final)).isSymbolicLink()).toBe(false);
            expect(kind === 'ova' || kind === 'qcow2', 'the long-lived work dirs must be caught').toBe(false);
          } else {
            const ids = (await readdir(w.staging)).filter((n) => !n.endsWith('.partial'));
            expect(ids).toHaveLength(1);
            expect(r.stderr.split('\n')).toEqual([
              `p2v-import: ${final} is a symbolic link; p2v-import never writes through one`,
              `p2v-import: hint: remove the link (someone may be redirecting the output), or give the real path; the verified import stays in ${join(w.staging, ids[0]!)}`,
            ]);
            expect(r.exitCode).toBe(1);
            expect((await lstat(final)).isSymbolicLink()).toBe(true);
            // The staged copy that was kept is whole.
            await execa('qemu-img', [
              'compare',
              '-q',
              '-f',
              'raw',
              '-F',
              'raw',
              src.raw,
              join(w.staging, ids[0]!, 'disk0.raw'),
            ]);
          }
          await nothingHalfBuilt([w.place(sub)]);
          await w.victimUnchanged();
        } finally {
          if (!log) await attacker.stop().catch(() => undefined);
          await rm(w.staging, { recursive: true, force: true });
        }
      });
    });
  }

  it('refuses to place into an output directory swapped for a link during the run', async () => {
    needRoot();
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('hijack', async (dir) => {
      const src = await makeDataOva(dir);
      const w = await world(dir);
      const ovaDir = w.place('ova');
      const attacker = await startAttacker(dir, {
        mode: 'swap-dir',
        staging: w.staging,
        finals: { [ovaDir]: [`${NAME}.ova`] },
        victimFile: w.victimFile,
        victimDir: w.victimDir,
      });
      let log: AttackLog | undefined;
      try {
        const r = await runImport(['--staging', w.staging, '--ova', join(ovaDir, `${NAME}.ova`)], {
          inputFile: src.ova,
        });
        log = await attacker.stop();
        expect(log.swapped).toBe(1);
        expect(r.stderr.split('\n')[0]).toBe(
          `p2v-import: output directory ${ovaDir} is a symbolic link; p2v-import never writes through one`,
        );
        expect(r.exitCode).toBe(1);
        // Nothing in the moved directory but the attacker's old-style links: no output, no work dir.
        for (const e of await readdir(`${ovaDir}.moved`)) {
          expect(e).toMatch(/^\.test-vm\.ova\.p2v-.*\.tmp$/);
          expect((await lstat(join(`${ovaDir}.moved`, e))).isSymbolicLink()).toBe(true);
        }
        await w.victimUnchanged();
      } finally {
        if (!log) await attacker.stop().catch(() => undefined);
        await rm(w.staging, { recursive: true, force: true });
      }
    });
  });

  it('removes its work dir when killed while building an output (SIGTERM)', async () => {
    needRoot();
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('hijack', async (dir) => {
      const src = await makeDataOva(dir);
      const w = await world(dir);
      try {
        const [node, script] = cliArgv('p2v-import');
        const ovaDir = w.place('ova');
        const child = spawn(node!, [script!, '--staging', w.staging, '--ova', join(ovaDir, `${NAME}.ova`), src.ova], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        const exit = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
        const end = Date.now() + 30_000;
        while (!(await readdir(ovaDir)).some((e) => e.startsWith('.p2v-'))) {
          if (Date.now() > end) throw new Error(`no work dir appeared: ${stderr}`);
          await new Promise((r) => setTimeout(r, 5));
        }
        child.kill('SIGTERM');
        expect(await exit).toBe(143);
        expect(stderr).toMatch(/interrupted by SIGTERM, cleaning up/);
        expect(await readdir(ovaDir)).toEqual([]);
        await w.victimUnchanged();
      } finally {
        await rm(w.staging, { recursive: true, force: true });
      }
    });
  });
});
