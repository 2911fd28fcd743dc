import { describe, expect, it } from 'vitest';
import { onExit, pendingExitActions, runExitActions, withCleanup } from '../../lib/exit-actions.js';

describe('exit actions', () => {
  it('run newest first, once', async () => {
    const order: string[] = [];
    onExit('a', () => void order.push('a'));
    const b = onExit('b', () => void order.push('b'));
    onExit('c', async () => void order.push('c'));
    await b.run();
    await runExitActions();
    await runExitActions();
    expect(order).toEqual(['b', 'c', 'a']);
    expect(pendingExitActions()).toEqual([]);
  });

  it('withCleanup releases its resources when the body throws', async () => {
    const order: string[] = [];
    await expect(
      withCleanup(async (scope) => {
        scope.onExit('mount', () => void order.push('umount'));
        scope.onExit('loop', () => void order.push('detach'));
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(order).toEqual(['detach', 'umount']);
  });

  it('a cancelled action never runs', async () => {
    let ran = false;
    onExit('x', () => void (ran = true)).cancel();
    await runExitActions();
    expect(ran).toBe(false);
  });
});

describe('exit actions at exit', () => {
  it('runExitActions waits for an action another caller already started', async () => {
    let finished = false;
    const h = onExit('slow removal', async () => {
      await new Promise((r) => setTimeout(r, 50));
      finished = true;
    });
    void h.run(); // e.g. a scope's finally, still running when a broken pipe makes the CLI exit
    await runExitActions();
    expect(finished).toBe(true);
  });
});
