/**
 * A p2v-import that is still running: started with a pipe on stdin that was
 * fed only the head of an OVA and is kept open, so the import sits in its
 * `.partial` directory until the test ends it (kill, stdin.end, or its own
 * --idle-timeout).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { cliArgv } from '../helpers/cli.js';

export interface RunningImport {
  child: ChildProcessWithoutNullStreams;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

export async function waitFor(what: string, test: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function startImport(args: string[], head: Buffer): RunningImport {
  const [node, script] = cliArgv('p2v-import');
  const child = spawn(node!, [script!, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  child.stdin.on('error', () => undefined);
  child.stdin.write(head);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.on('exit', (code, signal) => res({ code, signal })),
  );
  return { child, exit, stderr: () => stderr };
}

/** Names in `staging` ending in .partial that hold the importer's owner file. */
export async function claimedPartials(staging: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of await readdir(staging).catch(() => [] as string[])) {
    if (!n.endsWith('.partial')) continue;
    if ((await readdir(join(staging, n)).catch(() => [] as string[])).includes('owner')) out.push(n);
  }
  return out;
}
