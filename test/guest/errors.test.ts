/**
 * Errors: argument mistakes are TypeError/RangeError before any system
 * call; system call failures are VfioErrors with code, errno and syscall and
 * a message that says what to check; closed objects say so.
 */
import assert from 'node:assert/strict';
import { AddressSpace } from '../../lib/address-space';
import { DmaBuffer } from '../../lib/memory';
import { BDF, eduFixture, forEachBackend } from '../support/guest';

describe('argument errors, before any system call', () => {
  it('refuses bad DMA buffer sizes and kinds', () => {
    assert.throws(() => DmaBuffer.allocate(0), { name: 'RangeError', message: /must not be 0/ });
    assert.throws(() => DmaBuffer.allocate(100), { name: 'RangeError', message: /multiple of 4096/ });
    assert.throws(() => DmaBuffer.allocate(-4096), RangeError);
    assert.throws(() => DmaBuffer.allocate(4096, { kind: 'hugetlb' }), { name: 'RangeError', message: /multiple of 2097152/ });
    assert.throws(() => DmaBuffer.allocate('4096' as unknown as number), TypeError);
    assert.throws(() => DmaBuffer.allocate(4096, { kind: 'gpu' as 'memfd' }), TypeError);
  });
  it('refuses an unknown backend and a malformed PCI address', () => {
    assert.throws(() => AddressSpace.open({ backend: 'vfio' as 'type1' }), TypeError);
    using space = AddressSpace.open({ backend: 'type1' });
    assert.throws(() => space.openDevice('03.0'), RangeError);
  });
});

forEachBackend('errors', (backend) => {
  const fx = eduFixture(backend);
  let space: AddressSpace;
  beforeEach(() => ({ space } = fx));

  it('checks offsets, lengths and IOVA overflow before mapping', () => {
    using buf = DmaBuffer.allocate(8192);
    assert.throws(() => space.map(buf, { offset: 1 }), { name: 'RangeError', message: /aligned/ });
    assert.throws(() => space.map(buf, { length: 100 }), RangeError);
    assert.throws(() => space.map(buf, { offset: 4096, length: 8192 }), { name: 'RangeError', message: /outside/ });
    assert.throws(() => space.map(buf, { iova: (1n << 64n) - 4096n }), { name: 'RangeError', message: /past 2\^53, beyond any IOVA/ });
    assert.throws(() => space.map(buf, { iova: -1n }), RangeError);
    assert.throws(() => space.map({} as DmaBuffer), TypeError);
    assert.equal(space.liveMappings().length, 0);
  });

  it('maps nothing twice at one IOVA: EEXIST from the kernel', () => {
    using a = DmaBuffer.allocate(4096);
    using b = DmaBuffer.allocate(4096);
    const m = space.map(a);
    const syscall = backend === 'iommufd' ? 'ioctl(IOMMU_IOAS_MAP)' : 'ioctl(VFIO_IOMMU_MAP_DMA)';
    // Below the allocator: the backend's raw map at an IOVA already in use.
    assert.throws(() => space.backend.map(b.native, 0n, 4096n, m.iova, { read: true, write: true }, false), {
      name: 'VfioError',
      code: 'EEXIST',
      errno: -17,
      syscall,
      message: /already mapped/,
    });
    m.unmap();
  });

  it('refuses an IOVA outside the usable ranges (the MSI window)', () => {
    using buf = DmaBuffer.allocate(4096);
    const msi = 0xfee00000n;
    assert.ok(!space.iovaRanges().some((r) => r.start <= msi && msi <= r.last), 'the MSI window is reserved');
    assert.throws(() => space.map(buf, { iova: msi }), { code: 'EADDRNOTAVAIL' });
    const expected = backend === 'iommufd' ? { syscall: 'ioctl(IOMMU_IOAS_MAP)' } : { syscall: 'ioctl(VFIO_IOMMU_MAP_DMA)' };
    assert.throws(() => space.backend.map(buf.native, 0n, 4096n, msi, { read: true, write: true }, false), {
      name: 'VfioError',
      ...expected,
    });
  });

  it('unmapping where nothing is mapped: ENOENT under iommufd, 0 bytes under type1', () => {
    if (backend === 'iommufd') {
      assert.throws(() => space.unmapRange(0x10000000n, 4096n), {
        name: 'VfioError',
        code: 'ENOENT',
        errno: -2,
        syscall: 'ioctl(IOMMU_IOAS_UNMAP)',
      });
    } else {
      assert.equal(space.unmapRange(0x10000000n, 4096n), 0n);
    }
  });

  it('says a device is not bound to vfio-pci', () => {
    assert.throws(() => space.openDevice('0000:00:00.0'), { code: 'ERR_VFIO_NOT_BOUND', message: /not vfio-pci: echo vfio-pci/ });
  });

  it('refuses to open a device twice in one address space, before any system call', () => {
    assert.throws(() => space.openDevice(BDF.edu), { code: 'ERR_VFIO_BUSY', message: /already open in this address space/ });
  });

  it('a device open in another address space is busy for the kernel', () => {
    using other = AddressSpace.open({ backend });
    const expected =
      backend === 'iommufd'
        ? { name: 'VfioError', syscall: 'ioctl(VFIO_DEVICE_BIND_IOMMUFD)' }
        : { name: 'VfioError', code: 'EBUSY', syscall: 'open' };
    assert.throws(() => other.openDevice(BDF.edu), expected);
  });
});

describe('closed objects', () => {
  it('a closed buffer, device and address space each say they are closed; double close is fine', () => {
    const space = AddressSpace.open({ backend: 'type1' });
    const dev = space.openDevice(BDF.ivshmem);
    const buf = DmaBuffer.allocate(4096);
    const view = buf.bytes;
    buf.close();
    buf.close();
    assert.equal(view.byteLength, 0, 'the ArrayBuffer is detached');
    assert.throws(() => buf.bytes, { code: 'ERR_VFIO_CLOSED' });
    dev.close();
    dev.close();
    assert.throws(() => dev.info(), { code: 'ERR_VFIO_CLOSED' });
    space.close();
    space.close();
    assert.throws(() => space.map(DmaBuffer.allocate(4096)), { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => space.openDevice(BDF.edu), { code: 'ERR_VFIO_CLOSED' });
  });
});
