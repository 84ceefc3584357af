/**
 * The seeded fuzz on real devices, per backend: every public entry of the
 * package (test/support/fuzz-api.ts reads them from the published
 * declarations) called with wrong types, NaN, ±Infinity, negative and huge
 * numbers and bigints, zero and unaligned sizes, on closed objects and out
 * of order, over an address space with edu, ivshmem and an NVMe controller
 * open in it (test/support/fuzz-world.ts). Each seed runs in its own child
 * process, so a crash is caught and attributed (the call it died in, and the
 * seed that replays it). The run fails on a signal, a hang (a child that
 * does not end on its own, everything closed), an uncaught exception, an
 * unhandled rejection, or an error with one of JavaScript's own messages.
 * At least 20,000 calls per run, shared by the backends the kernel has.
 * Seeds: the fixed one and a fresh one per run, or NODE_VFIO_FUZZ_SEED
 * alone. Calls that would take the machine down by design are declined
 * (test/support/fuzz-guards.ts says which).
 */
import assert from 'node:assert/strict';
import { deriveSeed } from '../support/fuzz-random';
import { figure } from '../support/figures';
import { fuzzFigures, fuzzSeeds, problems, runFuzzChild } from '../support/fuzz-run';
import { forEachBackend, KERNEL, MATRIX } from '../support/guest';

const TOTAL = 20_000;
const seeds = fuzzSeeds();
const backends = MATRIX.filter((c) => !c.absent).length;
/** Calls per seed and backend: the same whether one seed runs (a replay) or two (a run), so that a replay makes the same calls. */
const CALLS = Math.ceil(TOTAL / (backends * 2));
/** What the replay line adds to run in the guest this ran in: npm test runs the stock kernel on the system's QEMU. */
const STOCK_ARGS = KERNEL === 'debian' ? ' --kernel debian --qemu system' : '';

forEachBackend('fuzz of the public API on real devices', (backend) => {
  for (const seed of seeds) {
    it(`${CALLS} calls, seed ${seed}: no crash, hang, uncaught exception, unhandled rejection or engine-internal error`, async function () {
      this.timeout(600_000);
      const run = await runFuzzChild(backend, deriveSeed(seed, backend), CALLS, 540_000);
      figure(fuzzFigures(`[${backend}]`, seed, run));
      if (run.report?.neverCalled.length)
        console.log(`      not reached (no receiver of their class at hand): ${run.report.neverCalled.join(', ')}`);
      const replay = `NODE_VFIO_FUZZ_SEED=${seed} node dist/test/run-guest.js${STOCK_ARGS} dist/test/guest/fuzz.test.js`;
      const found = problems(run, replay);
      assert.deepEqual(found, [], found.join('\n\n'));
      assert.ok(run.report!.calls >= CALLS, `${run.report!.calls} calls made`);
    });
  }
});
