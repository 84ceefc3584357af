/**
 * Figures a test measured (cycles run, kills survived, calls fuzzed, ...):
 * printed in the test's output at once, and kept for the count reporter,
 * which writes them with the suite's counts so that `npm test` prints them
 * again in its closing summary.
 */

const kept: string[] = [];

/** Prints `line` under the running test and keeps it for the suite's summary. */
export function figure(line: string): void {
  console.log(`      ${line}`);
  kept.push(line);
}

/** Every figure printed so far in this process. */
export function figures(): readonly string[] {
  return kept;
}
