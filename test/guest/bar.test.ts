/** ivshmem's BAR2 through the zero-copy mapping, witnessed by the host's backing file. */
import assert from 'node:assert/strict';
import { AddressSpace } from '../../lib/address-space';
import { BDF, forEachBackend, pattern, readIvshmemHost as readHost, writeIvshmemHost as writeHost } from '../support/guest';
import { ivshmemByte } from '../support/witness';

forEachBackend('ivshmem BAR2', (backend) => {
  // Offsets: the first 64 KiB keep the host's pattern; this suite uses 64..128 KiB.
  const AREA = 64 * 1024;
  let space: AddressSpace;
  before(() => {
    space = AddressSpace.open({ backend });
  });
  after(() => space.close());

  it('shows the host-written pattern through the zero-copy ArrayBuffer', () => {
    using dev = space.openDevice(BDF.ivshmem);
    const bar = dev.bar(2);
    assert.equal(bar.mapped, true);
    assert.equal(bar.size, 1n << 20n);
    const view = new Uint8Array(bar.buffer);
    for (let i = 0; i < 4096; i++) assert.equal(view[i], ivshmemByte(i), `byte ${i}`);
  });

  it('bytes written from TypeScript are read by the host from the backing file, and the reverse', () => {
    using dev = space.openDevice(BDF.ivshmem);
    const bar = dev.bar(2);
    const view = new Uint8Array(bar.buffer);
    const out = pattern(8192, backend === 'iommufd' ? 1 : 2);
    view.set(out, AREA);
    assert.deepEqual(readHost(AREA, out.length), out);
    const back = pattern(4096, backend === 'iommufd' ? 3 : 4);
    writeHost(AREA + 16384, back);
    assert.deepEqual(view.subarray(AREA + 16384, AREA + 16384 + 4096), back);
  });

  it('has typed 8/16/32/64-bit register accessors over the same memory', () => {
    using dev = space.openDevice(BDF.ivshmem);
    const bar = dev.bar(2);
    const at = AREA + 32768;
    bar.write64(at, 0x0123456789abcdefn);
    assert.equal(bar.read64(at), 0x0123456789abcdefn);
    assert.equal(bar.read32(at), 0x89abcdef);
    assert.equal(bar.read16(at + 4), 0x4567);
    assert.equal(bar.read8(at + 7), 0x01);
    bar.write8(at, 0xff);
    bar.write16(at + 2, 0xbeef);
    bar.write32(at + 4, 0xcafef00d);
    assert.deepEqual([...readHost(at, 8)], [0xff, 0xcd, 0xef, 0xbe, 0x0d, 0xf0, 0xfe, 0xca]);
    assert.throws(() => bar.read32(at + 1), RangeError);
    assert.throws(() => bar.read64(Number(bar.size)), RangeError);
    assert.throws(() => bar.write8(at, 256), RangeError);
  });

  it('reads config space, region info and device info', () => {
    using dev = space.openDevice(BDF.ivshmem);
    assert.equal(dev.config.read16(0), 0x1af4);
    assert.equal(dev.config.read16(2), 0x1110);
    const info = dev.info();
    assert.ok(info.numRegions >= 9 && info.numIrqs >= 1);
    const r2 = dev.regionInfo(2);
    assert.equal(r2.size, 1n << 20n);
    assert.ok(r2.mappable && r2.readable && r2.writable);
    assert.equal(dev.regionInfo(7).mappable, false);
  });

  it('turns bus mastering on and off through the command register', () => {
    using dev = space.openDevice(BDF.ivshmem);
    dev.setBusMaster(true);
    assert.equal(dev.config.read16(4) & 4, 4);
    dev.setBusMaster(false);
    assert.equal(dev.config.read16(4) & 4, 0);
  });
});
