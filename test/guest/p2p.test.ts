/**
 * Peer-to-peer: edu DMA into and out of another device's BAR through a
 * p2p phys_list, witnessed by the host's ivshmem backing file; what the
 * backends accept; revocation when the exporter stops decoding or resets.
 */
import assert from 'node:assert/strict';
import { AddressSpace } from '../../lib/address-space';
import { EduDevice, EDU_DMA_LIMIT } from '../../lib/drivers/edu';
import { DmaBuffer } from '../../lib/memory';
import { P2PProvider } from '../../lib/p2p-provider';
import { PhysList } from '../../lib/phys-list';
import { BDF, forEachBackend, pattern, readIvshmemHost as readHost, writeIvshmemHost as writeHost } from '../support/guest';

forEachBackend('P2P into ivshmem BAR2', (backend) => {
  // This suite owns ivshmem offsets from 128 KiB; fragments sit far apart in the BAR.
  const A = 0x20000;
  const B = 0x48000;
  let space: AddressSpace;
  let edu: EduDevice;
  let provider: P2PProvider;
  let staging: DmaBuffer;
  let stagingIova: bigint;
  before(() => {
    space = AddressSpace.open({ backend });
    edu = EduDevice.open(space, BDF.edu);
    provider = new P2PProvider(space.openDevice(BDF.ivshmem), 2);
    staging = DmaBuffer.allocate(4096);
    stagingIova = space.map(staging, { limit: EDU_DMA_LIMIT }).iova;
  });
  after(() => {
    provider.close();
    space.close();
    staging.close();
  });

  it('edu writes across two non-adjacent BAR fragments mapped contiguously; the host finds the bytes in its file', async () => {
    const list = PhysList.p2p(provider, [
      { offset: A, length: 4096 },
      { offset: B, length: 4096 },
    ]);
    const m = space.mapPhysList(list, { limit: EDU_DMA_LIMIT });
    assert.equal(m.length, 8192n);
    writeHost(A, new Uint8Array(4096));
    writeHost(B, new Uint8Array(4096));
    const data = pattern(4000, backend === 'iommufd' ? 21 : 22);
    staging.bytes.set(data);
    await edu.dmaToDevice(stagingIova, 0, 4000);
    await edu.dmaFromDevice(0, m.iova + 2048n, 4000); // 2048 bytes into fragment 0, 1952 into fragment 1
    assert.deepEqual(readHost(A + 2048, 2048), data.subarray(0, 2048));
    assert.deepEqual(readHost(B, 1952), data.subarray(2048));
    assert.ok(
      readHost(A, 2048).every((b) => b === 0) && readHost(B + 1952, 100).every((b) => b === 0),
      'nothing outside the write changed',
    );
    m.unmap();
  });

  it('edu reads what the host wrote into the peer BAR, across the fragment boundary', async () => {
    const list = PhysList.p2p(provider, [
      { offset: A + 0x10000, length: 4096 },
      { offset: B + 0x10000, length: 4096 },
    ]);
    const m = space.mapPhysList(list, { limit: EDU_DMA_LIMIT });
    const first = pattern(4096, 31);
    const second = pattern(4096, 32);
    writeHost(A + 0x10000, first);
    writeHost(B + 0x10000, second);
    await edu.dmaToDevice(m.iova + 3000n, 0, 3000);
    staging.bytes.fill(0);
    await edu.dmaFromDevice(0, stagingIova, 3000);
    assert.deepEqual(staging.bytes.subarray(0, 1096), first.subarray(3000));
    assert.deepEqual(staging.bytes.subarray(1096, 3000), second.subarray(0, 1904));
    m.unmap();
  });

  it(
    backend === 'iommufd'
      ? "refuses the BAR's mmap as user memory (IOMMU_IOAS_MAP): P2P goes through a dma-buf"
      : "accepts the BAR's mmap as memory (VFIO_IOMMU_MAP_DMA of a PFNMAP range)",
    () => {
      const bar = provider.device.region(2).mem();
      using window = space.reserve(4096);
      const map = (): void => space.backend.map(bar, 0n, 4096n, window.iova, { read: true, write: true }, false);
      if (backend === 'iommufd') {
        assert.throws(map, { name: 'VfioError', syscall: 'ioctl(IOMMU_IOAS_MAP)' });
      } else {
        map();
        space.backend.unmap(window.iova, 4096n);
      }
    },
  );

  it(
    backend === 'iommufd'
      ? 'revokes the mapping when the exporter stops decoding its BARs; a new link works again'
      : 'keeps the mapping when the exporter stops and resumes decoding (type1 holds the BAR address)',
    async () => {
      const list = PhysList.p2p(provider, [{ offset: A + 0x20000, length: 4096 }]);
      const m = space.mapPhysList(list, { limit: EDU_DMA_LIMIT });
      let revokedEvents = 0;
      m.on('revoked', () => revokedEvents++);
      const data = pattern(512, 41);
      staging.bytes.set(data);
      await edu.dmaToDevice(stagingIova, 0, 512);
      writeHost(A + 0x20000, new Uint8Array(512));
      provider.device.setMemoryEnabled(false);
      provider.device.setMemoryEnabled(true);
      await edu.dmaFromDevice(0, m.iova, 512);
      if (backend === 'iommufd') {
        assert.equal(m.revoked, true);
        assert.equal(revokedEvents, 1);
        assert.ok(
          readHost(A + 0x20000, 512).every((b) => b === 0),
          'a revoked mapping reaches nothing',
        );
        m.unmap();
        const again = space.mapPhysList(list, { limit: EDU_DMA_LIMIT });
        await edu.dmaFromDevice(0, again.iova, 512);
        assert.deepEqual(readHost(A + 0x20000, 512), data, 'the relinked list (fresh dma-buf) works');
        again.unmap();
      } else {
        assert.equal(m.revoked, false);
        assert.deepEqual(readHost(A + 0x20000, 512), data);
        m.unmap();
      }
    },
  );
});

forEachBackend('P2P revocation by reset (nvme BAR0, read only)', (backend) => {
  it(
    backend === 'iommufd'
      ? 'a reset of the exporter revokes its dma-buf: edu reads zeros instead of the registers; relinking restores them'
      : 'a reset leaves the type1 mapping working: edu reads the registers before and after',
    async () => {
      using space = AddressSpace.open({ backend });
      using edu = EduDevice.open(space, BDF.edu);
      using nvme = space.openDevice(BDF.nvme);
      assert.ok(nvme.info().flags & 1, "QEMU's nvme advertises a reset (FLR)");
      using provider = new P2PProvider(nvme, 0);
      using out = DmaBuffer.allocate(4096);
      const mo = space.map(out, { limit: EDU_DMA_LIMIT });
      const list = PhysList.p2p(provider, [{ offset: 0, length: 4096 }]);
      const cap = nvme.bar(0).read64(0); // NVMe CAP, read by the CPU
      const readRegisters = async (iova: bigint): Promise<bigint> => {
        out.bytes.fill(0xff);
        await edu.dmaToDevice(iova, 0, 8);
        await edu.dmaFromDevice(0, mo.iova, 8);
        return new DataView(out.buffer).getBigUint64(0, true);
      };
      const m = space.mapPhysList(list, { limit: EDU_DMA_LIMIT });
      assert.equal(await readRegisters(m.iova), cap, 'edu read CAP through the peer BAR');
      nvme.reset();
      if (backend === 'iommufd') {
        assert.equal(m.revoked, true);
        assert.equal(await readRegisters(m.iova), 0n, 'blocked: the IOMMU entries are gone');
        m.unmap();
        const again = space.mapPhysList(list, { limit: EDU_DMA_LIMIT });
        assert.equal(await readRegisters(again.iova), cap);
      } else {
        assert.equal(m.revoked, false);
        assert.equal(await readRegisters(m.iova), cap);
      }
    },
  );

  it('refuses to reset a device that has no reset method, saying so', () => {
    using space = AddressSpace.open({ backend });
    using ivshmem = space.openDevice(BDF.ivshmem);
    assert.equal(ivshmem.info().flags & 1, 0);
    assert.throws(() => ivshmem.reset(), { code: 'ERR_VFIO_NO_RESET', message: /no reset method/ });
  });
});
