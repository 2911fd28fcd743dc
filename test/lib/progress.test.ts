// lib/progress: the meter's contract (running totals, done never above total, one final update)
// and the constructor the importer uses (mode 'json' with its own out stream).
import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { PhaseReporter, Progress, type ProgressEvent } from '../../lib/progress.js';

function sink(): { out: PassThrough; events: () => ProgressEvent[] } {
  const out = new PassThrough();
  let text = '';
  out.on('data', (b: Buffer) => (text += b.toString()));
  return {
    out,
    events: () =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as ProgressEvent),
  };
}

describe('Progress', () => {
  it('writes JSON updates with running totals to its out stream (the importer form)', () => {
    const s = sink();
    const p = new Progress({ phase: 'receiving disk 0', total: 100, mode: 'json', out: s.out, intervalMs: 0 });
    p.add(30);
    p.add(30);
    p.update(90);
    p.finish();
    p.finish(); // once only
    expect(s.events()).toEqual([
      expect.objectContaining({
        type: 'progress',
        phase: 'receiving disk 0',
        unit: 'bytes',
        done: 30,
        total: 100,
        final: false,
      }),
      expect.objectContaining({ done: 60, total: 100 }),
      expect.objectContaining({ done: 90, total: 100 }),
      expect.objectContaining({ done: 90, total: 100, eta: 0, final: true }),
    ]);
    expect(p.bytesDone).toBe(90);
  });

  it('never shows done above total: a low estimate grows to what was done', () => {
    const s = sink();
    const p = new Progress({ phase: 'x', total: 10, mode: 'json', out: s.out, intervalMs: 0 });
    p.update(25);
    p.finish();
    for (const e of s.events()) if (e.type === 'progress') expect(e.done).toBeLessThanOrEqual(e.total!);
  });

  it('draws one TTY line at most 80 wide, and JSON to jsonOut at the same time', () => {
    const tty = sink();
    const json = sink();
    let drawn = '';
    tty.out.on('data', (b: Buffer) => (drawn += b.toString()));
    const p = new Progress({
      phase: 'stream',
      total: 2 ** 30,
      mode: 'tty',
      out: tty.out,
      jsonOut: json.out,
      intervalMs: 0,
    });
    p.update(2 ** 29);
    p.finish();
    expect(drawn.startsWith('\rstream:  50.0% 512.0 MiB / 1.0 GiB')).toBe(true);
    expect(drawn.endsWith('\n')).toBe(true);
    for (const l of drawn.split(/[\r\n]/)) expect(l.length).toBeLessThanOrEqual(80);
    expect(json.events().map((e) => e.type === 'progress' && e.done)).toEqual([2 ** 29, 2 ** 29]);
  });

  it('PhaseReporter brackets each phase with start and end, ok:false when it throws', async () => {
    const s = sink();
    const r = new PhaseReporter({ mode: 'none', jsonOut: s.out });
    await r.run('inspect', async () => 1);
    await expect(
      r.run('trim', async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(s.events().map((e) => (e.type === 'phase' ? `${e.phase}:${e.state}:${e.ok ?? ''}` : e.type))).toEqual([
      'inspect:start:',
      'inspect:end:true',
      'trim:start:',
      'trim:end:false',
    ]);
  });
});
