/**
 * Coalescing, counted by the host lane's fake kernel (preloaded into a child
 * Node process): a phys_list is linked with one map ioctl per run of
 * fragments contiguous in their source, on both backends, on the hot path
 * (pieces of a DmaPool, by virtual address) and on the file path (memfd
 * pieces mapped through IOMMU_IOAS_MAP_FILE, by file offset); the kernel
 * holds one mapping per run, and none after the unmap.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { buildFakeKernel } from '../../bench/host/build';
import { createFakeSysfs, FAKE_DEVICE, FakeSysfs } from '../../bench/host/fake-sysfs';
import type { CoalesceCase, CoalesceResult } from '../fixtures/dma-pool-coalesce';

const CHILD = path.resolve(__dirname, '../fixtures/dma-pool-coalesce.js');

const MAP_CALL = { iommufd: 'IOMMU_IOAS_MAP', type1: 'VFIO_IOMMU_MAP_DMA' } as const;

describe('phys_list coalescing (fake kernel)', function () {
  let sysfs: FakeSysfs;
  let result: CoalesceResult;

  before(function () {
    this.timeout(120_000); // a first build compiles the shim
    const shim = buildFakeKernel();
    sysfs = createFakeSysfs();
    const r = spawnSync(process.execPath, [CHILD, sysfs.root, FAKE_DEVICE.bdf], {
      env: { ...process.env, LD_PRELOAD: shim },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, `the child failed: ${r.stderr}`);
    result = JSON.parse(r.stdout) as CoalesceResult;
  });

  after(() => sysfs?.remove());

  const byName = (backend: keyof CoalesceResult, name: string): CoalesceCase => {
    const c = result[backend].find((x) => x.name === name);
    assert.ok(c, `${backend}: no case ${name}`);
    return c;
  };

  for (const backend of ['iommufd', 'type1'] as const) {
    const map = MAP_CALL[backend];

    it(`${backend}: 1,024 pool pieces allocated in order link with ONE map ioctl and one kernel mapping`, () => {
      const c = byName(backend, 'in-order');
      assert.equal(c.runs, 1);
      assert.deepEqual(c.calls, { [map]: 1 });
      assert.equal(c.liveLinked, 1);
      assert.equal(c.liveAfter, 0);
    });

    it(`${backend}: with freed pieces in between, one map ioctl per contiguous run`, () => {
      const c = byName(backend, 'holes');
      assert.equal(c.fragments, 1016);
      assert.equal(c.runs, 8, 'the first piece was freed: 8 runs of 127 pieces');
      assert.deepEqual(c.calls, { [map]: 8 });
      assert.equal(c.liveLinked, 8);
      assert.equal(c.liveAfter, 0);
    });

    it(`${backend}: pieces out of order do not coalesce: here one ioctl per fragment`, () => {
      const c = byName(backend, 'swapped');
      assert.equal(c.runs, 1024);
      assert.deepEqual(c.calls, { [map]: c.runs });
      assert.equal(c.liveLinked, c.runs);
    });

    it(`${backend}: consecutive memfd pieces mapped as a file coalesce by file offset`, () => {
      const whole = byName(backend, 'memfd-file');
      const sparse = byName(backend, 'memfd-file-sparse');
      // type1 has no file mapping: it maps the memfd's pages through their address, coalesced the same way.
      const fileMap = backend === 'iommufd' ? 'IOMMU_IOAS_MAP_FILE' : map;
      assert.equal(whole.runs, 1);
      assert.deepEqual(whole.calls, { [fileMap]: 1 });
      assert.equal(whole.liveLinked, 1);
      assert.equal(sparse.runs, 128);
      assert.deepEqual(sparse.calls, { [fileMap]: 128 });
      assert.equal(sparse.liveAfter, 0);
    });

    it(`${backend}: separate buffers are counted one map each (the count is the kernel's, not assumed)`, () => {
      const c = byName(backend, 'separate-buffers');
      assert.equal(c.calls[map], c.runs);
      assert.equal(c.liveLinked, c.runs);
      assert.ok(c.runs > 1, 'separate mmaps are rarely all adjacent');
    });
  }
});
