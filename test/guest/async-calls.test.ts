/**
 * The calls that can block run off the event loop (on libuv's pool, on a
 * duplicate of the fd): a device reset and the map (pin) of a large buffer.
 * They do what their synchronous forms do, their owners stay alive, and
 * closing an owner while they are in flight fails them clearly. (How long
 * their synchronous part takes is no proof under TCG: a first use of the
 * pool starts its threads, which took 260 ms in one run.)
 */
import assert from 'node:assert/strict';
import { AddressSpace } from '../../lib/address-space';
import { EduDevice, EDU_DMA_LIMIT } from '../../lib/drivers/edu';
import { DmaBuffer } from '../../lib/memory';
import { BDF, forEachBackend, pattern } from '../support/guest';

forEachBackend('calls off the event loop', (backend) => {
  it('resetAsync() resets the device and tells the P2P bookkeeping as reset() does', async () => {
    using space = AddressSpace.open({ backend });
    const nvme = space.openDevice(BDF.nvme);
    let resets = 0;
    nvme.on('reset', () => resets++);
    nvme.reset(); // the same ioctl on the event loop
    await nvme.resetAsync();
    assert.equal(resets, 2);
    const edu = space.openDevice(BDF.edu);
    await assert.rejects(edu.resetAsync(), { name: 'VfioStateError', code: 'ERR_VFIO_NO_RESET' });
  });

  it('resetAsync() on a device closed while it resets rejects with ERR_VFIO_CLOSED', async () => {
    using space = AddressSpace.open({ backend });
    const nvme = space.openDevice(BDF.nvme);
    const pending = nvme.resetAsync();
    nvme.close();
    await assert.rejects(pending, { code: 'ERR_VFIO_CLOSED' });
    using again = space.openDevice(BDF.nvme); // the device file was let go
    assert.equal(again.bdf, BDF.nvme);
  });

  it('mapAsync() pins 64 MiB; edu moves bytes through the mapping', async function () {
    this.timeout(60_000);
    using space = AddressSpace.open({ backend });
    using edu = EduDevice.open(space, BDF.edu);
    using buf = DmaBuffer.allocate(64 << 20);
    const m = await space.mapAsync(buf, { limit: EDU_DMA_LIMIT });
    const data = pattern(4000, 64);
    buf.bytes.set(data, (64 << 20) - 4096);
    await edu.dmaToDevice(m.iova + BigInt((64 << 20) - 4096), 0, data.length);
    await edu.dmaFromDevice(0, m.iova, data.length);
    assert.deepEqual(buf.bytes.subarray(0, data.length), data);
    assert.equal(space.liveMappings().length, 1);
    m.unmap();
  });

  it('mapAsync() holds a buffer closed meanwhile, and rejects with ERR_VFIO_CLOSED when the space closes meanwhile', async () => {
    const space = AddressSpace.open({ backend });
    using edu = EduDevice.open(space, BDF.edu);
    const buf = DmaBuffer.allocate(1 << 20);
    buf.bytes.fill(0x3c);
    const pending = space.mapAsync(buf, { limit: EDU_DMA_LIMIT });
    buf.close(); // the mapping-to-be holds the memory
    const m = await pending;
    await edu.dmaToDevice(m.iova, 0, 16);
    const out = DmaBuffer.allocate(4096);
    const mo = space.map(out, { limit: EDU_DMA_LIMIT });
    await edu.dmaFromDevice(0, mo.iova, 16);
    assert.deepEqual([...out.bytes.subarray(0, 16)], new Array(16).fill(0x3c));
    const late = space.mapAsync(DmaBuffer.allocate(1 << 20));
    space.close();
    await assert.rejects(late, { code: 'ERR_VFIO_CLOSED' });
    assert.equal(space.pinCount(), 0);
  });
});
