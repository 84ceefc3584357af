/**
 * IrqVector on the host, under the host lane's fake kernel (preloaded into a
 * child Node process, test/fixtures/irq-vectors.ts): each vector's trigger()
 * (its VFIO_DEVICE_SET_IRQS argument prepared when the vector was made)
 * signals that vector alone, once; an interrupt reaches the listeners
 * without allocating anything on the JavaScript heap; and the listeners run
 * as EventEmitter's emit() runs them, with MakeCallback's ticks, promises
 * and async context.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { buildFakeKernel } from '../../bench/host/build';
import { createFakeSysfs, FAKE_DEVICE, FakeSysfs } from '../../bench/host/fake-sysfs';
import type { IrqVectorsResult } from '../fixtures/irq-vectors';

const CHILD = path.resolve(__dirname, '../fixtures/irq-vectors.js');
/** A young generation no measurement fills: a garbage collection would hide what was allocated (the child fails then). */
const NODE_FLAGS = ['--min-semi-space-size=64', '--max-semi-space-size=64'];

describe('IrqVector (fake kernel)', function () {
  let sysfs: FakeSysfs;
  let result: IrqVectorsResult;

  before(function () {
    this.timeout(120_000); // a first build compiles the shim
    const shim = buildFakeKernel();
    sysfs = createFakeSysfs();
    const r = spawnSync(process.execPath, [...NODE_FLAGS, CHILD, sysfs.root, FAKE_DEVICE.bdf], {
      env: { ...process.env, LD_PRELOAD: shim },
      encoding: 'utf8',
      timeout: 90_000,
    });
    assert.equal(r.status, 0, `the child failed: ${r.stderr}`);
    result = JSON.parse(r.stdout) as IrqVectorsResult;
  });

  after(() => sysfs?.remove());

  it("each vector's trigger() makes one ioctl that signals that vector once, and no other", () => {
    assert.equal(result.triggers.length, 8);
    for (const t of result.triggers) {
      assert.deepEqual(t.calls, { VFIO_DEVICE_SET_IRQS: 1 }, `vector ${t.vector}`);
      assert.equal(t.signals, 1, `vector ${t.vector}`);
      const want = t.seen.map((_, i) => (i === t.vector ? [1] : []));
      assert.deepEqual(t.seen, want, `vector ${t.vector}`);
    }
  });

  it('DeviceInterrupts.trigger() of several vectors signals each of them once, by one ioctl', () => {
    const { several } = result;
    assert.deepEqual(several.calls, { VFIO_DEVICE_SET_IRQS: 1 });
    assert.equal(several.signals, 3);
    assert.deepEqual(
      several.seen,
      several.seen.map((_, i) => ([1, 3, 6].includes(i) ? [1] : [])),
    );
  });

  it('allocates nothing per interrupt on the way to the listeners: the heap grows by what Node itself allocates per turn', () => {
    const { bare, oneListener, threeListeners } = result.heap;
    // Node allocates an object every turn of its loop (the check phase's callback scope): the bare watcher's growth.
    assert.ok(bare > 0 && bare < 256, `a bare watcher's turn grew the heap by ${bare} bytes`);
    // Anything allocated per event would add at least a word (8 bytes) to every one of 100,000 events.
    assert.ok(oneListener - bare < 1, `one listener: ${oneListener - bare} bytes per event more than a bare watcher`);
    assert.ok(threeListeners - bare < 1, `three listeners: ${threeListeners - bare} bytes per event more than a bare watcher`);
  });

  it('calls the listeners as emit() does: in order, changes made during an event count from the next', () => {
    // a removes itself and adds c; b removes d, which comes after it and still runs this time.
    assert.deepEqual(result.listeners.changes, [
      ['a', 'b', 'd'],
      ['b', 'c'],
    ]);
  });

  it('honours once(), prependListener() and prependOnceListener()', () => {
    assert.deepEqual(result.listeners.onceAndPrepend, [
      ['po', 'p', 'o', 'q'],
      ['p', 'q'],
    ]);
    assert.equal(result.listeners.onceAndPrependLeft, 2);
  });

  it('sees listeners added after removeAllListeners(), with or without an event name', () => {
    assert.deepEqual(result.listeners.removeAll, [['y'], ['z']]);
  });

  it("runs a listener's ticks and promises right after it, before the next vector's listener (MakeCallback)", () => {
    const { queued } = result.listeners;
    const first = queued[0];
    const second = first === 'v4' ? 'v5' : 'v4';
    assert.deepEqual(queued, [first, `${first} tick`, `${first} promise`, second, `${second} tick`, `${second} promise`]);
  });

  it('turns a throwing listener into an uncaught exception, and delivers the next interrupt', () => {
    assert.equal(result.listeners.thrown, 'from a listener');
    assert.equal(result.listeners.afterThrow, 1);
    assert.equal(result.listeners.count, 6, 'vector.count counts every interrupt');
  });

  it("under EventEmitter.captureRejections, an async listener's rejection is an 'error' event", () => {
    assert.equal(result.listeners.captured, 'an async listener rejected');
  });

  it('calls the listeners in the async context the vector was made in (AsyncLocalStorage)', () => {
    assert.equal(result.listeners.store, 'made in als.run');
    assert.ok(result.listeners.asyncId > 1, `executionAsyncId() was ${result.listeners.asyncId}`);
  });

  it('teardown ends every pending wait() at once, also after removeAllListeners() or with a throwing close listener, and leaves no timer', () => {
    assert.deepEqual(result.teardown.outcomes, ['rejected ERR_VFIO_CLOSED', 'rejected ERR_VFIO_CLOSED']);
    assert.equal(result.teardown.timersLeft, 0);
  });
});
