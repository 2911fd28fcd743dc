/**
 * p2v-export --inspect with a base map (exporter/delta/projection.ts), with
 * the real tools: a data disk exported cold into a stager that keeps bases,
 * some files changed, then `--inspect --base-map` projects the final pass
 * (text and JSON) without sending anything, and the delta export that
 * follows sends within the stated tolerance of the projected bytes.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { cliArgv } from '../../helpers/cli.js';
import { needPrograms, needRoot } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';
import { fetchBlockMap } from '../../importer/delta/fixtures.js';
import { changeFiles, makeDataDisk } from '../../../bench/delta-image.js';

const MiB = 1024 * 1024;
/** The tolerance docs/design-delta.md states for the projected bytes: 5 % of the delta, plus 16 KiB. */
const TOLERANCE = (actual: number) => 0.05 * actual + 16 * 1024;

function p2vExport(args: string[]) {
  const [node, exp] = cliArgv('p2v-export');
  return execa(node!, [exp!, ...args], { reject: false, stdin: 'ignore' });
}

describe('p2v-export --inspect --base-map (projection of the final pass)', () => {
  it('projects the bytes the delta then sends, and a downtime, in text and JSON, sending nothing', async () => {
    needRoot();
    await needPrograms('nbdkit', 'nbdfuse', 'mount', 'umount', 'mkfs.ext4', 'cp');
    await withTmpDir('p2v-delta-project-', async (dir) => {
      const disk = await makeDataDisk(join(dir, 'src.img'), 128 * MiB, 120, 200_000);
      const staging = join(dir, 'staging');
      let r = await p2vExport(['--disk', disk.path, '--name', 'web1', '-o', join(dir, 'cold.ova'), '--quiet']);
      expect(r.exitCode, r.stderr).toBe(0);
      const [node, imp] = cliArgv('p2v-import');
      r = await execa(
        node!,
        [imp!, '--staging', staging, '--keep-base', '--raw', join(dir, 'out1'), '--quiet', join(dir, 'cold.ova')],
        { reject: false },
      );
      expect(r.exitCode, r.stderr).toBe(0);
      await fetchBlockMap(staging, 'web1', join(dir, 'map'));
      const changed = await changeFiles(disk, 12);
      const base = ['--disk', disk.path, '--name', 'web1', '--base-map', join(dir, 'map')];

      const text = await p2vExport([...base, '--inspect', '--link-rate', '10M']);
      expect(text.exitCode, text.stderr).toBe(0);
      expect(text.stdout).toMatch(/^final pass against the complete base of web1 \(4096-byte blocks\):$/m);
      expect(text.stdout).toMatch(/^ {2}disk 0: \d+ of 32768 blocks changed, \d+ now zeros; [\d.]+ MB read$/m);
      expect(text.stdout).toMatch(/^ {2}bytes to send: +[\d.]+ MB \([\d.]+ MB changed × [\d.]+ deflated/m);
      expect(text.stdout).toMatch(/^ {2}downtime: +[\d.]+ s \(read and digest [\d.]+ s, link 10 MB\/s\)$/m);
      expect(text.stdout).toMatch(/fixups and the trim/);

      const json = await p2vExport([...base, '--inspect', '--json']);
      expect(json.exitCode, json.stderr).toBe(0);
      const p = JSON.parse(json.stdout).deltaProjection;
      expect(p).toMatchObject({ base: 'web1', baseState: 'complete', blockSize: 4096, linkRateGiven: false });
      // Ten files of about 200 kB rewritten in place: at least their blocks changed.
      expect(p.disks[0].changedBlocks * 4096).toBeGreaterThanOrEqual(changed);
      expect(p.compressionRatio).toBeGreaterThan(0.9); // random data barely deflates
      expect(p.downtimeSeconds).toBeGreaterThan(p.readSeconds);
      // The transfer at the assumed 1 Gbit/s is part of it.
      expect(p.downtimeSeconds).toBeGreaterThanOrEqual(p.readSeconds + p.bytesToSend / 125e6);

      // Nothing was sent: the base is as it was, so the delta made now is the one projected.
      r = await p2vExport([...base, '-o', join(dir, 'delta.ova'), '--quiet']);
      expect(r.exitCode, r.stderr).toBe(0);
      const actual = (await stat(join(dir, 'delta.ova'))).size;
      expect(Math.abs(p.bytesToSend - actual), `projected ${p.bytesToSend}, sent ${actual}`).toBeLessThanOrEqual(
        TOLERANCE(actual),
      );
    });
  });

  it('refuses --link-rate without --inspect and a base map', async () => {
    const r = await p2vExport(['--disk', '/dev/null', '--link-rate', '10M', '-o', '/tmp/never.ova']);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/--link-rate goes with --inspect and --base-map/);
  });
});
