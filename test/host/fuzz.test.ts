/**
 * The seeded fuzz on the host: every public entry of the package called
 * with wrong types, hostile numbers and bigints, zero and unaligned sizes,
 * closed objects and out of order, over what needs no VFIO (buffers, lists,
 * pools, command builders, NvmeRegisters over a memfd region, errors,
 * allocators); devices fail to open here, which is tested too. The guest
 * runs the same fuzz over real devices (test/guest/fuzz.test.ts). Seeds:
 * see fuzzSeeds() (NODE_VFIO_FUZZ_SEED replays one).
 */
import assert from 'node:assert/strict';
import * as lib from '../../lib/index';
import { readDeclarations } from '../support/fuzz-api';
import { entriesOf } from '../support/fuzz-driver';
import { figure } from '../support/figures';
import { fuzzFigures, fuzzSeeds, problems, runFuzzChild } from '../support/fuzz-run';

const CALLS = 10_000;

describe('fuzz of the public API on the host (no VFIO)', () => {
  it('reaches every export: each exported class and function of the package has entries to call', () => {
    const entries = entriesOf(lib as unknown as Record<string, unknown>, readDeclarations());
    const owners = new Set(entries.map((e) => e.owner ?? e.id.replace(/^new /, '').replace(/[.#].*$/, '')));
    const exported = Object.entries(lib)
      .filter(([, v]) => typeof v === 'function')
      .map(([k]) => k);
    assert.deepEqual(
      exported.filter((name) => !owners.has(name)),
      [],
      'exports the fuzz does not call',
    );
    const ids = new Set(entries.map((e) => e.id));
    const builders = Object.entries(lib.nvmeCommands).filter(([, fn]) => typeof fn === 'function');
    assert.deepEqual(
      builders.map(([name]) => `nvmeCommands.${name}`).filter((id) => !ids.has(id)),
      [],
      'nvmeCommands the fuzz does not call',
    );
    assert.ok(entries.length > 250, `${entries.length} entries`);
  });

  for (const seed of fuzzSeeds()) {
    it(`${CALLS} calls, seed ${seed}: no crash, hang, uncaught exception, unhandled rejection or engine-internal error`, async function () {
      this.timeout(120_000);
      const run = await runFuzzChild('host', seed, CALLS, 100_000);
      figure(fuzzFigures('[host]', seed, run));
      const found = problems(run, `NODE_VFIO_FUZZ_SEED=${seed} npx mocha dist/test/host/fuzz.test.js`);
      assert.deepEqual(found, [], found.join('\n\n'));
      assert.ok(run.report!.calls >= CALLS, `${run.report!.calls} calls made`);
    });
  }
});
