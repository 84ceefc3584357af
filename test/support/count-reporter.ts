/**
 * Mocha's spec output, plus the suite's real counts (and the figures its
 * tests printed with figure()) written as JSON to $NODE_VFIO_RESULTS, which
 * test/run-all reads to print CI's closing lines.
 */
import * as fs from 'node:fs';
import Mocha from 'mocha';
import { figures } from './figures';

class CountReporter extends Mocha.reporters.Spec {
  constructor(runner: Mocha.Runner, options?: Mocha.MochaOptions) {
    super(runner, options);
    const failures: string[] = [];
    runner.on('fail', (test, err: Error) => failures.push(`${test.fullTitle()}: ${err?.message ?? err}`));
    runner.once('end', () => {
      const file = process.env.NODE_VFIO_RESULTS;
      if (!file) return;
      const s = runner.stats ?? { passes: 0, failures: 0, pending: 0, tests: 0 };
      fs.writeFileSync(file, JSON.stringify({ passed: s.passes, failed: s.failures, pending: s.pending, failures, figures: figures() }));
    });
  }
}

export = CountReporter;
