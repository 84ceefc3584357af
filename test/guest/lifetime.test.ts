/**
 * Memory a device can reach cannot be freed from JavaScript: not by close(),
 * not by the garbage collector. Unmapped and collected, it is released.
 * And everything closed leaves no file descriptor behind.
 */
import assert from 'node:assert/strict';
import { AddressSpace } from '../../lib/address-space';
import { EduDevice, EDU_DMA_LIMIT } from '../../lib/drivers/edu';
import { DmaBuffer } from '../../lib/memory';
import { BDF, collectGarbage, forEachBackend, mapsContain, openFdCount, pattern, procStatus } from '../support/guest';

forEachBackend('memory lifetime', (backend) => {
  const pinned = (): number => procStatus(backend === 'iommufd' ? 'VmPin' : 'VmLck');

  it('keeps mapped memory alive after every JavaScript reference is dropped and collected', async () => {
    using space = AddressSpace.open({ backend });
    using edu = EduDevice.open(space, BDF.edu);
    using probe = DmaBuffer.allocate(4096);
    const mp = space.map(probe, { limit: EDU_DMA_LIMIT });
    const { iova, address } = ((): { iova: bigint; address: bigint } => {
      const lost = DmaBuffer.allocate(64 * 4096);
      const m = space.map(lost, { limit: EDU_DMA_LIMIT });
      const at = lost.address;
      lost.close(); // JavaScript's view is gone, and no reference is kept
      return { iova: m.iova, address: at };
    })();
    await collectGarbage();
    assert.ok(mapsContain(address), 'the mapped memory is still in the address space of the process');
    const data = pattern(3000, 99);
    probe.bytes.set(data);
    await edu.dmaToDevice(mp.iova, 0, data.length);
    await edu.dmaFromDevice(0, iova + 63n * 4096n, data.length); // into the dropped buffer's last page
    probe.bytes.fill(0);
    await edu.dmaToDevice(iova + 63n * 4096n, 0, data.length); // and back out of it
    await edu.dmaFromDevice(0, mp.iova, data.length);
    assert.deepEqual(probe.bytes.subarray(0, data.length), data, 'the dropped buffer held what the device wrote');
  });

  it('releases the memory once unmapped and collected (pinned figures and the process map)', async () => {
    using space = AddressSpace.open({ backend });
    using _edu = EduDevice.open(space, BDF.edu); // attached: the space has a device, as in real use
    const before = pinned();
    const address = ((): bigint => {
      const buf = DmaBuffer.allocate(256 * 4096);
      const m = space.map(buf);
      const at = buf.address;
      assert.equal(pinned() - before, 1024, 'mapping 1 MiB pins 1024 kB');
      m.unmap();
      return at;
    })();
    assert.equal(pinned(), before, 'unmapping unpins');
    await collectGarbage();
    assert.equal(mapsContain(address), false, 'the memory left the process once collected');
    assert.equal(space.pinCount(), 0);
  });

  it('closing the address space unmaps and unpins everything it mapped', () => {
    const before = pinned();
    const space = AddressSpace.open({ backend });
    EduDevice.open(space, BDF.edu);
    const bufs = [1, 2, 3].map(() => DmaBuffer.allocate(16 * 4096));
    for (const b of bufs) space.map(b);
    assert.equal(pinned() - before, 3 * 64);
    space.close();
    assert.equal(pinned(), before);
    for (const b of bufs) b.close();
  });

  it('leaves no file descriptor behind once everything is closed', () => {
    const before = openFdCount();
    for (let i = 0; i < 3; i++) {
      const space = AddressSpace.open({ backend });
      const edu = EduDevice.open(space, BDF.edu);
      const ivshmem = space.openDevice(BDF.ivshmem);
      void ivshmem.bar(2).buffer;
      const buf = DmaBuffer.allocate(8192, { kind: 'memfd' });
      space.map(buf);
      edu.close();
      buf.close();
      space.close();
    }
    assert.equal(openFdCount(), before);
  });
});
