/**
 * The native EventfdWatcher on a plain eventfd (no VFIO needed): counts
 * exactly, calls back with the count alone through MakeCallback (ticks and
 * promises after each callback, the async context it was made in), holds
 * what it watches against close() and the garbage collector, keeps the loop
 * alive only while ref'd, and is torn down at the exit of its environment,
 * worker threads included.
 */
import assert from 'node:assert/strict';
import { AsyncLocalStorage, executionAsyncId } from 'node:async_hooks';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { addonPath, native, NativeFile } from '../../lib/native';

const ADDON = addonPath; // where the library loads it from (the checkout's build, else the prebuild)

function signal(fd: number, n: number): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  fs.writeSync(fd, b);
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

/** The descriptors of this process that are eventfds. */
function eventfds(): number[] {
  return fs
    .readdirSync('/proc/self/fd')
    .map(Number)
    .filter((f) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${f}`) === 'anon_inode:[eventfd]';
      } catch {
        return false; // the descriptor readdir itself used
      }
    });
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(cond(), 'timed out');
}

/** Runs a script with the addon at ADDON in a fresh node; returns its output and status. */
function runNode(script: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, ADDON }, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('EventfdWatcher', () => {
  let ev: NativeFile;
  beforeEach(() => {
    ev = native.NativeFile.eventfd();
  });
  afterEach(() => ev.close());

  it('calls back with what the counter accumulated, summing exactly', async () => {
    const seen: number[] = [];
    const w = new native.EventfdWatcher(ev, (n) => seen.push(n));
    signal(ev.fd, 3);
    signal(ev.fd, 4);
    await until(() => seen.length > 0);
    assert.deepEqual(seen, [7], 'one read drains what came before the loop turned');
    for (let i = 1; i <= 100; i++) {
      signal(ev.fd, i);
      if (i % 10 === 0) await turn();
    }
    await until(() => seen.reduce((a, b) => a + b, 0) === 7 + 5050);
    w.close();
  });

  it('calls onCount with the count alone, as a method of the watcher', async () => {
    const calls: { self: unknown; args: unknown[] }[] = [];
    const w = new native.EventfdWatcher(ev, function (this: unknown, ...args: unknown[]) {
      calls.push({ self: this, args });
    });
    signal(ev.fd, 2);
    await until(() => calls.length > 0);
    w.close();
    assert.equal(calls.length, 1);
    assert.equal(calls[0].self, w);
    assert.deepEqual(calls[0].args, [2]);
  });

  it("runs a callback's ticks and promises before the next callback of the same turn", async () => {
    const other = native.NativeFile.eventfd();
    const log: string[] = [];
    const watch = (name: string, file: NativeFile): { close(): number } =>
      new native.EventfdWatcher(file, () => {
        log.push(name);
        process.nextTick(() => log.push(`${name} tick`));
        void Promise.resolve().then(() => log.push(`${name} promise`));
      });
    const watchers = [watch('a', ev), watch('b', other)];
    try {
      signal(ev.fd, 1);
      signal(other.fd, 1); // both readable when the loop next polls: one turn calls both back
      await until(() => log.length === 6);
      const [first, second] = [log[0], log[0] === 'a' ? 'b' : 'a'];
      assert.deepEqual(log, [first, `${first} tick`, `${first} promise`, second, `${second} tick`, `${second} promise`]);
    } finally {
      watchers.forEach((w) => w.close());
      other.close();
    }
  });

  it('calls back in the async context it was made in', async () => {
    const als = new AsyncLocalStorage<string>();
    const seen: [string | undefined, number][] = [];
    const w = als.run('made here', () => new native.EventfdWatcher(ev, () => seen.push([als.getStore(), executionAsyncId()])));
    als.run('elsewhere', () => signal(ev.fd, 1));
    await until(() => seen.length > 0);
    w.close();
    assert.equal(seen[0][0], 'made here');
    assert.ok(seen[0][1] > 1, `executionAsyncId() was ${seen[0][1]}`);
  });

  it('close() stops it, hands back what was still counted, and is idempotent', async () => {
    let calls = 0;
    const w = new native.EventfdWatcher(ev, () => calls++);
    assert.equal(w.active, true);
    signal(ev.fd, 5);
    assert.equal(w.close(), 5);
    assert.equal(w.close(), 0);
    assert.equal(w.active, false);
    signal(ev.fd, 1);
    await turn();
    await turn();
    assert.equal(calls, 0);
  });

  it('watches its own duplicate: closing the eventfd object does not pull the descriptor from under libuv', async () => {
    const other = native.NativeFile.eventfd();
    const before = eventfds();
    let got = 0;
    const w = new native.EventfdWatcher(other, (n) => {
      got += n;
    });
    try {
      const dup = eventfds().find((f) => !before.includes(f));
      assert.ok(dup !== undefined, 'the watcher holds a duplicate of the eventfd');
      other.close();
      signal(dup, 9); // the same eventfd, through the watcher's own descriptor
      await until(() => got === 9);
    } finally {
      w.close();
    }
  });

  it('holds itself while watching: dropped and collected, it still delivers', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    assert.ok(gc, 'run with --expose-gc');
    let got = 0;
    const fd = ((): number => {
      const file = native.NativeFile.eventfd();
      new native.EventfdWatcher(file, function (this: { close(): number }, n: number) {
        got += n;
        this.close(); // `this` is the watcher
      });
      return file.fd;
    })();
    for (let i = 0; i < 4; i++) {
      gc();
      await turn();
    }
    signal(fd, 2);
    await until(() => got === 2);
  });

  it('refuses what is not an eventfd object', () => {
    assert.throws(() => new native.EventfdWatcher({} as NativeFile, () => {}), TypeError);
    assert.throws(() => new native.EventfdWatcher(ev, 1 as unknown as () => void), TypeError);
    assert.throws(() => new native.EventfdWatcher(ev, () => {}, 'no' as unknown as () => void), /onError must be a function/);
    const closed = native.NativeFile.eventfd();
    closed.close();
    assert.throws(() => new native.EventfdWatcher(closed, () => {}), { code: 'ERR_VFIO_CLOSED' });
  });

  // A Device needs VFIO: the trigger itself is tested under the fake kernel (irq-vectors.test.ts).
  it('loopbackTrigger() refuses what is not a Device', () => {
    assert.throws(() => native.EventfdWatcher.loopbackTrigger({} as never, 2, 0), {
      name: 'TypeError',
      message: /device must be a Device/,
    });
    assert.throws(() => native.EventfdWatcher.loopbackTrigger(ev as never, 2, 0), {
      name: 'TypeError',
      message: /device must be a Device/,
    });
  });

  it('leaves no descriptor behind over many watchers', () => {
    const before = fdCount();
    for (let i = 0; i < 500; i++) {
      const e = native.NativeFile.eventfd();
      new native.EventfdWatcher(e, () => {}).close();
      e.close();
    }
    assert.equal(fdCount(), before);
  });

  it("keeps the loop alive while ref'd, not once unref'd", () => {
    const prelude = `const a = require(process.env.ADDON); const e = a.NativeFile.eventfd(); const w = new a.EventfdWatcher(e, () => {});`;
    const held = runNode(`${prelude} setTimeout(() => { console.log('still running'); w.close(); }, 200).unref();`);
    assert.equal(held.status, 0);
    assert.match(held.out, /still running/);
    const free = runNode(`${prelude} w.unref(); setTimeout(() => console.log('still running'), 200).unref();`);
    assert.equal(free.status, 0);
    assert.doesNotMatch(free.out, /still running/);
  });

  it('turns a throwing callback into an uncaught exception', () => {
    const r = runNode(`const a = require(process.env.ADDON); const e = a.NativeFile.eventfd();
      const w = new a.EventfdWatcher(e, () => { throw new Error('from the callback'); });
      process.on('uncaughtException', (err) => { console.log('caught:', err.message); w.close(); });
      require('fs').writeSync(e.fd, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]));`);
    assert.equal(r.status, 0);
    assert.match(r.out, /caught: from the callback/);
  });

  it("works in worker threads, and a worker's exit tears down its live watchers", async function () {
    this.timeout(30_000);
    const before = fdCount();
    const code = `
      const { parentPort } = require('node:worker_threads');
      const a = require(process.env.ADDON);
      const keep = [];
      for (let i = 0; i < 8; i++) {
        const e = a.NativeFile.eventfd();
        keep.push(new a.EventfdWatcher(e, (n) => parentPort.postMessage(n)));
        require('fs').writeSync(e.fd, Buffer.from([i + 1, 0, 0, 0, 0, 0, 0, 0]));
      }`;
    for (let round = 0; round < 5; round++) {
      const worker = new Worker(code, { eval: true, env: { ...process.env, ADDON } });
      let sum = 0;
      worker.on('message', (n: number) => {
        sum += n;
      });
      await until(() => sum === 36);
      await worker.terminate(); // eight ref'd watchers still live
    }
    assert.equal(fdCount(), before);
  });
});
