/**
 * A mocha suite run inside the test guest, with its results read back on
 * the host: what a user's integration tests call from their own test runner.
 */
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HarnessError } from './apt';
import { GuestRunOptions, GuestRunResult, runInGuest } from './guest';
import { runsDir } from './paths';

/** One failed test of a guest mocha run. */
export interface GuestTestFailure {
  /** The test's full title (its describe() titles and its own). */
  title: string;
  /** The error's message and stack, as mocha reported them. */
  error: string;
}

/** Counts of a mocha run in the guest. */
export interface GuestTestCounts {
  /** Tests that passed. */
  passed: number;
  /** Tests that failed (hooks included). */
  failed: number;
  /** Skipped (`it.skip`, `this.skip()`) tests. */
  pending: number;
  /** Each failure's title and error. */
  failures: GuestTestFailure[];
}

/** Options of {@link runMochaInGuest}: those of {@link runInGuest} but the command, plus mocha's own. */
export interface GuestMochaOptions extends Omit<GuestRunOptions, 'command' | 'interactive'> {
  /** More mocha arguments, e.g. `['--timeout', '60000', '--grep', 'dma']`. */
  mochaArgs?: readonly string[];
}

/** What {@link runMochaInGuest} returns: the run, and the tests' counts when mocha reported them. */
export interface GuestMochaResult extends GuestRunResult {
  /** Undefined when mocha wrote no results (the guest died, mocha could not start). */
  tests?: GuestTestCounts;
}

interface MochaJson {
  stats?: { passes: number; failures: number; pending: number };
  failures?: { fullTitle: string; err: { message?: string; stack?: string } }[];
}

/**
 * Runs mocha on `specs` (paths or globs relative to the project directory,
 * compiled JavaScript) in the guest and reads its JSON report back. Mocha is
 * the project's own (`node_modules/mocha`), started with the host's Node.
 *
 * @throws TypeError when `specs` is not a non-empty array of strings.
 * @throws HarnessError when the project has no mocha installed.
 */
export async function runMochaInGuest(specs: readonly string[], options: GuestMochaOptions = {}): Promise<GuestMochaResult> {
  if (!Array.isArray(specs) || specs.length === 0 || !specs.every((s) => typeof s === 'string')) {
    throw new TypeError('specs must be a non-empty array of test file paths or globs');
  }
  const projectDir = path.resolve(options.projectDir ?? process.cwd());
  let mocha: string;
  try {
    mocha = createRequire(path.join(projectDir, 'package.json')).resolve('mocha/bin/mocha.js');
  } catch {
    throw new HarnessError(`no mocha in ${projectDir}/node_modules: npm install --save-dev mocha`);
  }
  fs.mkdirSync(runsDir(projectDir), { recursive: true });
  const report = path.join(fs.mkdtempSync(path.join(runsDir(projectDir), 'mocha-')), 'report.json');
  try {
    const run = await runInGuest({
      ...options,
      projectDir,
      command: ['node', mocha, '--reporter', 'json', '--reporter-option', `output=${report}`, ...(options.mochaArgs ?? []), ...specs],
    });
    return { ...run, tests: readReport(report) };
  } finally {
    fs.rmSync(path.dirname(report), { recursive: true, force: true });
  }
}

function readReport(file: string): GuestTestCounts | undefined {
  let json: MochaJson;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8')) as MochaJson;
  } catch {
    return undefined;
  }
  if (!json.stats) return undefined;
  return {
    passed: json.stats.passes,
    failed: json.stats.failures,
    pending: json.stats.pending,
    failures: (json.failures ?? []).map((f) => ({ title: f.fullTitle, error: f.err.stack ?? f.err.message ?? '' })),
  };
}
