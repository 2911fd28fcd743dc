/**
 * The undo journal of an in-place delta (importer/undo-journal.ts), on real
 * files: what it saved is what replay puts back, a torn last record (a crash
 * while the journal itself was written) is skipped, and ranges must ascend.
 */
import { createHash } from 'node:crypto';
import { open, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { replayUndo, UndoJournal } from '../../../importer/undo-journal.js';
import { withTmpDir } from '../../helpers/tmp.js';
import { pattern } from './fixtures.js';

const SIZE = 1024 * 1024;
const sha = async (p: string) =>
  createHash('sha256')
    .update(await readFile(p))
    .digest('hex');

describe('undo journal', () => {
  it('puts back every range it protected, and skips a torn last record', async () => {
    await withTmpDir('p2v-undo-', async (dir) => {
      const disk = join(dir, 'disk.raw');
      await writeFile(disk, pattern(SIZE, 1));
      const original = await sha(disk);
      const fh = await open(disk, 'r+');
      try {
        const journal = await UndoJournal.create(join(dir, 'disk.undo'));
        // Batch 1, protected then written.
        const batch1 = [
          { offset: 4096, length: 8192 },
          { offset: 65536, length: 4096 },
        ];
        await journal.protect(fh, batch1);
        for (const r of batch1) await fh.write(pattern(r.length, 9), 0, r.length, r.offset);
        const afterFirst = (await stat(join(dir, 'disk.undo'))).size;
        // Batch 2 protected, and the crash comes while its record is being written: its write never happens.
        await journal.protect(fh, [{ offset: 512 * 1024, length: 16384 }]);
        await journal.close();
        expect(await sha(disk)).not.toBe(original);
        await truncate(join(dir, 'disk.undo'), afterFirst + 100);
        const r = await replayUndo(join(dir, 'disk.undo'), fh, SIZE);
        expect(r).toEqual({ records: 2, bytes: 12288, torn: true });
      } finally {
        await fh.close();
      }
      expect(await sha(disk)).toBe(original);
    });
  });

  it('refuses a damaged record and a range that does not ascend', async () => {
    await withTmpDir('p2v-undo-', async (dir) => {
      const disk = join(dir, 'disk.raw');
      await writeFile(disk, pattern(SIZE, 2));
      const fh = await open(disk, 'r+');
      try {
        const journal = await UndoJournal.create(join(dir, 'disk.undo'));
        await journal.protect(fh, [{ offset: 8192, length: 4096 }]);
        await expect(journal.protect(fh, [{ offset: 4096, length: 4096 }])).rejects.toThrow(/not after the last one/);
        await journal.close();
        // One bit of the saved bytes flipped: the record no longer matches its digest and is not replayed.
        const j = await readFile(join(dir, 'disk.undo'));
        j[j.length - 10]! ^= 1;
        await writeFile(join(dir, 'disk.undo'), j);
        await fh.write(Buffer.alloc(4096, 0xee), 0, 4096, 8192);
        const r = await replayUndo(join(dir, 'disk.undo'), fh, SIZE);
        expect(r).toEqual({ records: 0, bytes: 0, torn: true });
        // No journal at all: nothing was written under it.
        expect(await replayUndo(join(dir, 'none.undo'), fh, SIZE)).toEqual({ records: 0, bytes: 0, torn: false });
      } finally {
        await fh.close();
      }
    });
  });
});
