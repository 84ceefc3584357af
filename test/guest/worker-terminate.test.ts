/**
 * A worker thread busy in the addon, ended from the main thread with
 * worker.terminate(): the process lives on (no C++ exception escapes while
 * the worker's environment shuts down: the addon is built with
 * NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS), and the worker's devices and
 * mappings are released so the next user opens the device at once. Before
 * that build flag, every run of this test died of SIGABRT ("terminate called
 * after throwing an instance of 'Napi::Error'"). Environment teardown is the
 * same for both backends: the kernel's default backend is enough.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { BDF, KERNEL } from '../support/guest';

const SCRIPT = path.resolve(__dirname, '../fixtures/worker-terminate.js');
const ROUNDS = 3;
const BACKEND = KERNEL === 'debian' ? 'type1' : 'iommufd';

describe(`worker.terminate() of a worker busy in the addon [${BACKEND}]`, () => {
  it(`survives ${ROUNDS} terminations mid-call, and the device is free after each`, function () {
    this.timeout(240_000);
    const r = spawnSync(process.execPath, [SCRIPT, BACKEND, BDF.edu, String(ROUNDS)], { encoding: 'utf8', timeout: 200_000 });
    assert.equal(r.signal, null, `the process died of ${r.signal}:\n${r.stderr}`);
    assert.equal(r.status, 0, `exit ${r.status}:\n${r.stderr}`);
    assert.equal(r.stdout.trim(), `ok ${ROUNDS}`);
  });
});
