/**
 * Text from a hostile stream never reaches the admin's terminal raw: a member
 * name or a descriptor value carrying a newline or an escape sequence stays on
 * the one line it was printed in, so it cannot forge a `p2v-import: output:`
 * line or repaint the screen (issue 13, item 4).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needPrograms } from '../helpers/programs.js';
import { descriptorXml, MiB, runImport } from './fixtures.js';

const FORGED = 'p2v-import: output: /etc/passwd';
let work = '';

/** An OVA (tar-stream, not ovf/) with the given members in order. */
async function packOva(path: string, members: { name: string; body: Buffer | string }[]): Promise<void> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((res, rej) => {
    pack.on('end', () => res());
    pack.on('error', rej);
  });
  for (const m of members) pack.entry({ name: m.name }, m.body);
  pack.finalize();
  await done;
  await writeFile(path, Buffer.concat(chunks));
}

/** Every stderr line is one of ours: a message, a hint or a stderr tail; none carries a raw control character. */
function expectClean(stderr: string): void {
  expect(stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
  for (const line of stderr.split('\n').filter(Boolean)) expect(line).toMatch(/^(p2v-import: |  \| )/);
  expect(stderr.split('\n').filter((l) => l.startsWith(FORGED))).toEqual([]);
}

beforeAll(async () => {
  await needPrograms('qemu-img');
  work = await mkdtemp(join(tmpdir(), 'p2v-escaping-'));
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('p2v-import escapes text from the stream', () => {
  it('a member name with a newline and ESC is printed on one line, escaped', async () => {
    const ova = join(work, 'member.ova');
    const evil = `disk1.vmdk\n${FORGED}\u001b[2J`;
    await packOva(ova, [
      { name: 'vm.ovf', body: descriptorXml({ disks: [{ href: 'disk1.vmdk', capacity: 4 * MiB }] }) },
      { name: evil, body: 'not a disk' },
    ]);
    const r = await runImport(['--staging', join(work, 'st1'), ova]);
    expect(r.exitCode).toBe(3);
    expectClean(r.stderr);
    expect(r.stderr).toContain('disk1.vmdk\\np2v-import: output: /etc/passwd\\e[2J');
  });

  it('a descriptor value with control characters is printed escaped', async () => {
    const ova = join(work, 'href.ova');
    // XML 1.0 forbids ESC even as a reference; a newline and a bidi override are allowed.
    const href = `disk1.vmdk&#10;${FORGED}&#x202e;`;
    await packOva(ova, [{ name: 'vm.ovf', body: descriptorXml({ disks: [{ href, capacity: 4 * MiB }] }) }]);
    const r = await runImport(['--staging', join(work, 'st2'), ova]);
    expect(r.exitCode).not.toBe(0);
    expectClean(r.stderr);
    expect(r.stderr).toContain('\\np2v-import: output: /etc/passwd\\u202e');
  });
});
