/**
 * Buffers the system cannot hold are refused up front: their pages are
 * populated at allocation, so a 4 GiB memfd in this 2 GiB guest used to bring
 * the OOM killer and then a kernel panic ("System is deadlocked on memory").
 */
import assert from 'node:assert/strict';
import { DmaBuffer, freeHugePages, HUGE_PAGE_SIZE, readMeminfo } from '../../lib/memory';

describe('DMA buffers beyond what the system holds', () => {
  it('refuses a 4 GiB buffer of every kind in a 2 GiB guest, naming what there is, and allocates after', () => {
    const available = readMeminfo().get('MemAvailable') ?? 0;
    assert.ok(available > 0 && available < 4 * 2 ** 30, `the guest has ${available} bytes available`);
    for (const kind of ['memfd', 'anonymous'] as const) {
      assert.throws(() => DmaBuffer.allocate(4n << 30n, { kind }), {
        name: 'VfioStateError',
        code: 'ERR_VFIO_NO_MEMORY',
        message: new RegExp(`${4 * 2 ** 30}-byte ${kind} DMA buffer does not fit: the system has \\d+ bytes of MemAvailable`),
      });
    }
    const huge = BigInt(freeHugePages() + 1) * HUGE_PAGE_SIZE;
    assert.throws(() => DmaBuffer.allocate(huge, { kind: 'hugetlb' }), {
      code: 'ERR_VFIO_NO_MEMORY',
      message: /free 2 MiB huge pages \(raise \/proc\/sys\/vm\/nr_hugepages\)/,
    });
    using small = DmaBuffer.allocate(1 << 20, { kind: 'memfd' });
    assert.equal(small.size, 1 << 20);
  });
});
