/**
 * Worker threads using the library at once, each with its own address space
 * and device (test/fixtures/workers.ts, in a child process so that a crash is
 * seen and attributed): edu DMA round trips in one, NVMe I/O at queue depth
 * 16 in another, BAR2 writes to ivshmem read back from the host's file in a
 * third, every byte checked, all closed; then the main thread opens each
 * device again and finds it working, and holding what the workers wrote.
 * A worker that ends without closing its device, a DMA running, leaves no
 * file open and no memory pinned once it has exited, and the device opens
 * again at once.
 */
import assert from 'node:assert/strict';
import { JsonChild, fixture } from '../support/children';
import { figure } from '../support/figures';
import { forEachBackend, pattern } from '../support/guest';
import { NVME_BLOCK } from '../support/witness';
import type { DeviceWorkerResult } from '../fixtures/device-worker';

forEachBackend('worker threads, each with its own device', (backend) => {
  it('edu, nvme and ivshmem workers move checked bytes at once and close; the main thread then opens each device again', async function () {
    this.timeout(300_000);
    const started = Date.now();
    const child = new JsonChild(fixture('workers'), [backend]);
    try {
      const report = await child.next<{
        workers: DeviceWorkerResult[];
        main: { ms: number; nvmeBlocks: string; ivshmem: string };
        leaver: { exit: number; fdsBefore: number; fdsAfter: number; pinnedBefore: number; pinnedAfter: number };
      }>(240_000);
      const { code, signal } = await child.end(30_000);
      assert.equal(signal, null, `the process died of ${signal}:\n${child.stderr}`);
      assert.equal(code, 0, child.stderr);
      const w = report.workers;
      assert.deepEqual(
        w.map((r) => r.kind),
        ['edu', 'nvme', 'ivshmem'],
      );
      assert.ok(Math.max(...w.map((r) => r.start)) < Math.min(...w.map((r) => r.end)), 'the three worked at the same time');
      // What the last rounds of the workers wrote (device-worker.ts: seeds 100, 200, 300 plus the round).
      assert.deepEqual(
        new Uint8Array(Buffer.from(report.main.nvmeBlocks, 'base64')),
        pattern(16 * NVME_BLOCK, 200 + 2),
        "nvme holds the worker's blocks",
      );
      assert.deepEqual(
        new Uint8Array(Buffer.from(report.main.ivshmem, 'base64')),
        pattern(32 * 1024, 300 + 7),
        "ivshmem holds the worker's bytes",
      );
      assert.equal(report.leaver.exit, 0);
      assert.equal(report.leaver.fdsAfter, report.leaver.fdsBefore, 'a worker that ended without closing left no file open');
      assert.equal(report.leaver.pinnedAfter, report.leaver.pinnedBefore, 'nor any memory pinned');
      figure(
        `workers [${backend}]: ${w.map((r) => `${r.kind} ${r.operations} operations, ${r.bytesChecked} bytes checked in ${r.end - r.start} ms`).join('; ')}; ` +
          `then the main thread reopened all three (${report.main.ms} ms); a worker that ended without closing edu left ` +
          `${report.leaver.fdsAfter - report.leaver.fdsBefore} files open and ${report.leaver.pinnedAfter - report.leaver.pinnedBefore} kB pinned, and edu opened again; ${Math.round((Date.now() - started) / 1000)} s`,
      );
    } finally {
      child.process.kill('SIGKILL');
    }
  });
});
