/**
 * The host benchmark lane's fake kernel (bench/host/fake-kernel.cc): built
 * from source and preloaded into a child Node process, it must carry the
 * library through AddressSpace.open (iommufd and type1), a map and unmap the
 * fake kernel counts, kernel-like errors, BAR0 and config space reads, and
 * an MSI-X loopback trigger; and without it the lane must fail, not
 * measure something else.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { buildFakeKernel } from '../../bench/host/build';
import { createFakeSysfs, FAKE_DEVICE, FakeSysfs } from '../../bench/host/fake-sysfs';
import type { SmokeResult } from '../../bench/host/smoke';

const SMOKE = path.resolve(__dirname, '../../bench/host/smoke.js');

function smoke(sysfs: string, preload: string | undefined): ReturnType<typeof spawnSync> {
  const env = { ...process.env, LD_PRELOAD: preload ?? '' };
  return spawnSync(process.execPath, [SMOKE, sysfs, FAKE_DEVICE.bdf], { env, encoding: 'utf8', timeout: 20_000 });
}

describe('host lane: the fake kernel', function () {
  let shim: string;
  let sysfs: FakeSysfs;
  let result: SmokeResult;

  before(function () {
    this.timeout(120_000); // a first build compiles the shim
    shim = buildFakeKernel();
    sysfs = createFakeSysfs();
    const r = smoke(sysfs.root, shim);
    assert.equal(r.status, 0, `smoke failed: ${r.stderr}`);
    result = JSON.parse(String(r.stdout)) as SmokeResult;
  });

  after(() => sysfs?.remove());

  it('opens iommufd (auto) and type1 address spaces and the device through it', () => {
    assert.deepEqual(
      result.backends.map((b) => b.kind),
      ['iommufd', 'type1'],
    );
    for (const b of result.backends) assert.deepEqual(b.ranges, ['0-fedfffff', 'fef00000-ffffffffffff']);
  });

  it('sees exactly one map and one unmap per map + unmap, and holds the mapping meanwhile', () => {
    const [iommufd, type1] = result.backends;
    // Two maps: the library's, and the one at the same IOVA that fails.
    assert.deepEqual(iommufd.mapCalls, { IOMMU_IOAS_MAP: 2, IOMMU_IOAS_UNMAP: 1 });
    assert.deepEqual(type1.mapCalls, { VFIO_IOMMU_MAP_DMA: 2, VFIO_IOMMU_UNMAP_DMA: 1 });
    for (const b of result.backends) {
      assert.equal(b.iova, '0x1000');
      assert.equal(b.liveMapped, 1);
      assert.equal(b.liveUnmapped, 0);
      assert.equal(b.overlapCode, 'EEXIST', 'a second map at a mapped IOVA fails as the kernel fails it');
    }
  });

  it('hands a single-page IOVA just unmapped to the next single-page map, and to exact requests for it', () => {
    for (const b of result.backends) {
      assert.equal(b.recycledIova, b.iova);
      assert.equal(b.exactIova, b.iova, 'an exact map takes the IOVA the space kept for reuse');
      assert.equal(b.reservedIova, b.iova, 'so does an exact reservation');
      assert.equal(b.liveAtEnd, 0);
    }
  });

  it('mmaps BAR0 onto the fake device memory and reads config space through pread', () => {
    for (const b of result.backends) {
      assert.equal(b.bar0Mapped, true);
      assert.equal(b.bar0Ident, 0x010000ed);
      assert.equal(b.bar0Readback, 0xcafef00d);
      assert.equal(b.configVendor, FAKE_DEVICE.vendor);
      assert.equal(b.configDevice, FAKE_DEVICE.device);
    }
  });

  it('signals an MSI-X eventfd on a loopback trigger', () => {
    assert.equal(result.irqCount, 1);
    assert.equal(result.signals, 1);
  });

  it('fails, saying why, when the shim is not preloaded', function () {
    this.timeout(20_000);
    const r = smoke(sysfs.root, undefined);
    assert.notEqual(r.status, 0);
    assert.match(String(r.stderr), /the fake kernel is not in use/);
  });
});
