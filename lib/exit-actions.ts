/**
 * One registry of undo actions per process (kill nbdkit, unmount, detach a
 * loop, remove a work dir). An action is registered as soon as its resource
 * exists and runs in reverse order: on normal completion of a scope, on error,
 * and on SIGINT/SIGTERM/SIGHUP or a closed stdout (EPIPE), so nothing is left
 * behind whatever way the process ends.
 */

export type ExitAction = () => void | Promise<void>;

export interface ExitHandle {
  /** Run this action now (once) and forget it. */
  run(): Promise<void>;
  /** Forget the action without running it (the resource was released). */
  cancel(): void;
}

interface Entry {
  label: string;
  action: ExitAction;
  done: boolean;
  /** Set once the action has started; later callers await the same run. */
  running?: Promise<void>;
}

const stack: Entry[] = [];
let signalsInstalled = false;
let exiting = false;

/** Called for each action that throws during cleanup; tests may replace it. */
export let onCleanupError = (label: string, e: unknown): void => {
  process.stderr.write(`cleanup: ${label}: ${e instanceof Error ? e.message : String(e)}\n`);
};

/** Actions started and not yet finished: whoever exits must wait for them too. */
const inFlight = new Set<Promise<void>>();

function runEntry(entry: Entry): Promise<void> {
  if (entry.running) return entry.running;
  if (entry.done) return Promise.resolve();
  entry.done = true;
  const i = stack.indexOf(entry);
  if (i >= 0) stack.splice(i, 1);
  const running = (async () => {
    try {
      await entry.action();
    } catch (e) {
      onCleanupError(entry.label, e);
    }
  })();
  entry.running = running;
  inFlight.add(running);
  void running.finally(() => inFlight.delete(running));
  return running;
}

/** Register an undo action; it runs at exit unless run or cancelled before. */
export function onExit(label: string, action: ExitAction): ExitHandle {
  installSignalHandlers();
  const entry: Entry = { label, action, done: false };
  stack.push(entry);
  return {
    run: () => runEntry(entry),
    cancel: () => {
      entry.done = true;
      const i = stack.indexOf(entry);
      if (i >= 0) stack.splice(i, 1);
    },
  };
}

/**
 * Run every pending action, newest first, and wait for actions already
 * started elsewhere (a scope's finally racing a signal or a broken pipe), so
 * the process never exits in the middle of an unmount or a removal.
 * Safe to call more than once.
 */
export async function runExitActions(): Promise<void> {
  for (;;) {
    const entry = stack[stack.length - 1];
    if (entry) {
      await runEntry(entry);
      continue;
    }
    if (inFlight.size === 0) return;
    await Promise.all([...inFlight]);
  }
}

/** Labels of pending actions (for tests and --debug). */
export function pendingExitActions(): string[] {
  return stack.map((e) => e.label);
}

function installSignalHandlers(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  const onSignal = (sig: NodeJS.Signals, status: number) => {
    if (exiting) return;
    exiting = true;
    if (stack.length > 0) process.stderr.write(`\ninterrupted by ${sig}, cleaning up\n`);
    void runExitActions().finally(() => process.exit(status));
  };
  process.on('SIGINT', () => onSignal('SIGINT', 130));
  process.on('SIGTERM', () => onSignal('SIGTERM', 143));
  process.on('SIGHUP', () => onSignal('SIGHUP', 129));
}

/**
 * Run `body` with cleanup guaranteed: actions registered through `scope.onExit`
 * run (newest first) when body settles, whatever the outcome.
 */
export async function withCleanup<T>(
  body: (scope: { onExit: (label: string, action: ExitAction) => ExitHandle }) => Promise<T>,
): Promise<T> {
  const handles: ExitHandle[] = [];
  const scope = {
    onExit: (label: string, action: ExitAction) => {
      const h = onExit(label, action);
      handles.push(h);
      return h;
    },
  };
  try {
    return await body(scope);
  } finally {
    for (const h of handles.reverse()) await h.run();
  }
}
