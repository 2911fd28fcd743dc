/**
 * What the end-to-end tests share: running the real CLIs in a shell pipeline
 * exactly as a user types it, looking inside a decoded raw disk through
 * offset loop devices (this kernel makes no partition devices), and the leak
 * check every pipeline ends with.
 *
 *   sha256File(path): Promise<string>
 *   shellPipeline(script, opts): Promise<PipelineResult>      bash -o pipefail -c …
 *   withOffsetLoop(file, offset, size, body, { readOnly })    losetup -o/--sizelimit, detached after
 *   withMount(dev, dir, body, { readOnly })                   mount, unmounted after
 *   probe(dev): Promise<Record<string, string>>                blkid -p -o export
 *   leftovers(dir): Promise<string[]>                          nbdkit/nbdfuse, loops, mounts under dir
 *   expectNoLeftovers(dir)                                     …polled for a few seconds, then asserted
 *   sh(argv…): string                                          a shell-quoted command line
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, realpath } from 'node:fs/promises';
import { execa } from 'execa';
import { expect } from 'vitest';
import { cliArgv } from '../helpers/cli.js';

export const MiB = 1024 * 1024;

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(c as Buffer);
  return h.digest('hex');
}

/** Quote one word for bash. */
export function q(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A shell command line from words. */
export function sh(...words: string[]): string {
  return words.map(q).join(' ');
}

/** `p2v-export`/`p2v-import` as a shell command prefix, run from the built dist/ like the installed bins. */
export function tool(name: 'p2v-export' | 'p2v-import' | 'p2v-ganeti-os'): string {
  return sh(...cliArgv(name));
}

export interface PipelineResult {
  exitCode: number;
  /** Exit status of each command of the pipeline (bash PIPESTATUS). */
  statuses: number[];
  stderr: string;
  seconds: number;
}

/**
 * Run `script` (a bash pipeline) with pipefail. The exit status of every
 * stage is printed by the wrapper on stderr so a test can tell which side failed.
 */
export async function shellPipeline(script: string, env: Record<string, string> = {}): Promise<PipelineResult> {
  const t0 = performance.now();
  const wrapped = `set -o pipefail; ${script}; s=("\${PIPESTATUS[@]}"); printf '\\nPIPESTATUS %s\\n' "\${s[*]}" >&2`;
  const r = await execa('bash', ['-c', wrapped], {
    reject: false,
    env,
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'pipe',
  });
  const stderr = String(r.stderr ?? '');
  const m = /^PIPESTATUS ([\d ]+)$/m.exec(stderr);
  const statuses = m ? m[1]!.trim().split(/\s+/).map(Number) : [];
  return {
    exitCode: statuses.length ? statuses.reduce((a, b) => a || b, 0) : (r.exitCode ?? -1),
    statuses,
    stderr: stderr.replace(/\n?^PIPESTATUS .*\n?/m, ''),
    seconds: (performance.now() - t0) / 1000,
  };
}

/** Throw with the pipeline's stderr unless every stage exited 0. */
export function expectPipelineOk(r: PipelineResult): void {
  if (r.exitCode !== 0 || r.statuses.some((s) => s !== 0))
    throw new Error(`pipeline failed (statuses ${r.statuses.join(' ')}):\n${r.stderr}`);
}

/** Attach [offset, offset+size) of `file` to a loop device for the duration of `body`. */
export async function withOffsetLoop<T>(
  file: string,
  offset: number,
  size: number,
  body: (dev: string) => Promise<T>,
  opts: { readOnly?: boolean } = {},
): Promise<T> {
  const args = ['--find', '--show', ...(opts.readOnly ? ['--read-only'] : [])];
  const dev = String(
    (await execa('losetup', [...args, '-o', String(offset), '--sizelimit', String(size), file])).stdout,
  ).trim();
  try {
    return await body(dev);
  } finally {
    await detachLoop(dev, file);
  }
}

/**
 * Detach a loop device, retrying while something (udev's probe after an
 * unmount, blkid) still holds it open: a test must not leak the loop devices
 * it counts in other programs' leftovers. Once detached, the same device
 * number may at once be attached by a parallel test to its own file, so "still
 * ours" means still backed by `file`, and only then is losetup -d repeated.
 */
async function detachLoop(dev: string, file: string): Promise<void> {
  const backing = await realpath(file);
  const stillOurs = async () => {
    const r = await execa('losetup', ['--list', '--noheadings', '-O', 'BACK-FILE', dev], { reject: false });
    return r.exitCode === 0 && String(r.stdout).trim() === backing;
  };
  for (let attempt = 0; await stillOurs(); attempt++) {
    if (attempt > 60) {
      const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(dev));
      throw new Error(
        `${dev} still backs ${file} 15 s after losetup -d; mounts of it: ${mounts.join(' | ') || 'none'}`,
      );
    }
    if (attempt > 0) await new Promise((ok) => setTimeout(ok, 250));
    await execa('losetup', ['-d', dev], { reject: false });
  }
}

/** Mount `dev` on `dir` (created) for the duration of `body`. */
export async function withMount<T>(
  dev: string,
  dir: string,
  body: (dir: string) => Promise<T>,
  opts: { readOnly?: boolean } = {},
): Promise<T> {
  await mkdir(dir, { recursive: true });
  // noload: a read-only mount must not replay the journal (the device is read-only too).
  await execa('mount', opts.readOnly ? ['-o', 'ro,noload', dev, dir] : [dev, dir]);
  try {
    return await body(dir);
  } finally {
    await execa('umount', [dir]);
  }
}

/** What blkid finds on a device, probing the device itself rather than its cache. */
export async function probe(dev: string): Promise<Record<string, string>> {
  const r = await execa('blkid', ['-p', '-o', 'export', dev], { reject: false });
  const out: Record<string, string> = {};
  for (const line of String(r.stdout).split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** What of ours is still around under `dir`: nbdkit/nbdfuse processes, loop devices, mounts. */
export async function leftovers(dir: string): Promise<string[]> {
  const out: string[] = [];
  const ps = await execa('pgrep', ['-af', '^(\\S*/)?(nbdkit|nbdfuse) '], { reject: false });
  for (const l of String(ps.stdout).split('\n')) if (l.includes(dir)) out.push(`process: ${l}`);
  const loops = await execa('losetup', ['-a'], { reject: false });
  for (const l of String(loops.stdout).split('\n')) if (l.includes(dir)) out.push(`loop: ${l}`);
  for (const l of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    // Mount points are octal-escaped in mountinfo (\040 for a space).
    const mp = (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp.startsWith(dir)) out.push(`mount: ${mp}`);
  }
  return out;
}

/**
 * Assert nothing of ours is left under `dir`. A few seconds of grace: a
 * child started with --exit-with-parent notices its parent's death
 * asynchronously; anything still there after that is a leak.
 */
export async function expectNoLeftovers(dir: string, graceMs = 3000): Promise<void> {
  const deadline = Date.now() + graceMs;
  let left = await leftovers(dir);
  while (left.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    left = await leftovers(dir);
  }
  expect(left).toEqual([]);
}
