/**
 * p2v-import's Ganeti export taken by the real thing: an OVA (qemu-img VMDKs,
 * GNU tar) → p2v-import --ganeti-export /var/lib/ganeti/export →
 * `gnt-backup import` with the p2v-image OS on the shared sandbox cluster
 * (Ganeti 3.0.2, fake hypervisor, file disks). Ganeti exits 0 even when an
 * OS import fails, so the instance disks' bytes are what is checked.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shippedDefinitionDir } from '../../ganeti-os/definition.js';
import {
  backupImportArgv,
  EXPORT_DIR,
  instanceDiskFiles,
  leaseSandbox,
  NODE,
  type SandboxLease,
} from '../helpers/ganeti.js';
import { needPrograms } from '../helpers/programs.js';
import { makeGoodOva, MiB, runImport } from './fixtures.js';

let lease: SandboxLease | undefined;
let work = '';

describe('p2v-import → gnt-backup import', () => {
  beforeAll(async () => {
    await needPrograms('qemu-img', 'tar');
    // Under /var/tmp: the same filesystem as /var/lib/ganeti/export, so dumps are hard-linked.
    work = await mkdtemp('/var/tmp/p2v-import-ganeti-');
    lease = await leaseSandbox();
    await lease.installOs(shippedDefinitionDir(), 'p2v-image');
  }, 900_000);

  afterAll(async () => {
    await lease?.release();
    if (work && process.env.P2V_KEEP_TMP !== '1') await rm(work, { recursive: true, force: true });
  }, 120_000);

  it('imports a two-disk machine with its NIC; the instance disks equal the sources', async () => {
    const good = await makeGoodOva(work, { sizes: [24 * MiB, 8 * MiB + 4096], mac: 'aa:00:00:5e:00:42' });
    const r = await runImport([
      '--staging',
      join(work, 'staging'),
      '--ganeti-export',
      EXPORT_DIR,
      '--name',
      'imported.example',
      '--hypervisor',
      'fake',
      '-q',
      good.ova,
    ]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const src = join(EXPORT_DIR, 'imported.example');
    const out = await lease!.gnt(backupImportArgv(src, 'imported.example'));
    expect(out).not.toMatch(/WARNING/);
    const disks = await instanceDiskFiles('imported.example');
    expect(disks).toHaveLength(2);
    // 8 MiB + 4 KiB becomes a 9 MiB Ganeti disk: the tail reads as zeros.
    expect((await stat(disks[1]!)).size).toBe(9 * MiB);
    for (const [i, raw] of good.raws.entries()) {
      await execa('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', raw, disks[i]!]);
    }
    const list = await lease!.gnt([
      'gnt-instance',
      'list',
      '--no-headers',
      '--separator=|',
      '-o',
      'name,os,hypervisor,disk.sizes,nic.macs,nic.modes,nic.links,be/maxmem,be/vcpus',
      'imported.example',
    ]);
    expect(list.trim()).toBe('imported.example|p2v-image+default|fake|24,9|aa:00:00:5e:00:42|bridged|gntbr0|512|2');
  });

  it('gives a NIC that came without a MAC address a new one', async () => {
    const dir = join(work, 'nomac');
    await execa('mkdir', ['-p', dir]);
    const good = await makeGoodOva(dir, { sizes: [4 * MiB] });
    const r = await runImport([
      '--staging',
      join(work, 'staging'),
      '--ganeti-export',
      EXPORT_DIR,
      '--name',
      'nomac.example',
      '--hypervisor',
      'fake',
      '-q',
      good.ova,
    ]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const out = await lease!.gnt(backupImportArgv(join(EXPORT_DIR, 'nomac.example'), 'nomac.example'));
    expect(out).not.toMatch(/WARNING/);
    const list = await lease!.gnt([
      'gnt-instance',
      'list',
      '--no-headers',
      '--separator=|',
      '-o',
      'nic.macs,nic.modes,nic.links',
      'nomac.example',
    ]);
    expect(list.trim()).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}\|bridged\|gntbr0$/);
    const [disk] = await instanceDiskFiles('nomac.example');
    await execa('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', good.raws[0]!, disk!]);
  });
});
