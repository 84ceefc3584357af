/**
 * What escapes a test's promises: uncaught exceptions and unhandled
 * rejections, collected around a piece of work.
 */

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The uncaught exceptions and unhandled rejections the process sees while
 * `body` runs and for `afterMs` after it (long enough for the timers under
 * test to fire several times). Mocha's own handlers stay: an uncaught error
 * fails the test either way, this list says which.
 */
export async function uncaughtDuring(body: () => Promise<void>, afterMs = 400): Promise<unknown[]> {
  const seen: unknown[] = [];
  const record = (e: unknown): void => void seen.push(e);
  process.on('uncaughtException', record);
  process.on('unhandledRejection', record);
  try {
    await body();
    await sleep(afterMs);
  } finally {
    process.off('uncaughtException', record);
    process.off('unhandledRejection', record);
  }
  return seen;
}
