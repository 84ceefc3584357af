/**
 * Opening and closing, all or nothing: a device whose open fails after the
 * kernel attached it is detached and closed (usable again at once, here and
 * by another process); a device's close tears down its regions, interrupts
 * and P2P providers whatever its listeners throw; P2P revocation happens
 * whichever way memory decoding was turned off; repeated opens leave no
 * listener behind; and an iommufd context is closed by its owner only.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { AddressSpace } from '../../lib/address-space';
import { PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, VfioPciDevice } from '../../lib/device';
import { EduDevice, EDU_DMA_LIMIT } from '../../lib/drivers/edu';
import { DeviceInterrupts } from '../../lib/interrupts';
import { IommufdContext } from '../../lib/iommu/iommufd';
import { BackendKind } from '../../lib/iommu/backend';
import { DmaBuffer } from '../../lib/memory';
import { P2PProvider } from '../../lib/p2p-provider';
import { PhysList } from '../../lib/phys-list';
import { BDF, collectGarbage, forEachBackend, KERNEL, openFdCount, pattern } from '../support/guest';

const LIB = path.resolve(__dirname, '../../lib');
const IVSHMEM_VENDOR = 0x1af4;
/** The x86 MSI window: every device behind the vIOMMU reserves it. */
const MSI_START = 0xfee00000;
const MSI_BYTES = 0x100000;

/** Opens `bdf` in an address space of a child node process and reads its vendor ID; its exit status and output. */
function openInChild(backend: BackendKind, bdf: string): { status: number | null; out: string } {
  const script = [
    `const { AddressSpace } = require(${JSON.stringify(LIB)});`,
    `const space = AddressSpace.open({ backend: ${JSON.stringify(backend)} });`,
    `const device = space.openDevice(${JSON.stringify(bdf)});`,
    `console.log('vendor ' + device.config.read16(0).toString(16));`,
    'space.close();',
  ].join('\n');
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: r.stdout + r.stderr };
}

/** `n` cycles of a P2P provider and interrupts (the device's own, and one made apart) opened and closed; weak references to them. */
function cycles(device: VfioPciDevice, n: number): WeakRef<object>[] {
  const refs: WeakRef<object>[] = [];
  for (let i = 0; i < n; i++) {
    const provider = new P2PProvider(device, 0);
    provider.close();
    const irqs = device.interrupts;
    irqs.enableMsix(1);
    irqs.close();
    const own = new DeviceInterrupts(device);
    own.close();
    refs.push(new WeakRef(provider), new WeakRef(irqs), new WeakRef(own));
  }
  return refs;
}

forEachBackend('device lifecycle', (backend) => {
  if (backend === 'iommufd') {
    it('a failed open is undone: the device attached, refreshing the ranges failed, it is detached and closed, usable at once here and by another process', () => {
      using space = AddressSpace.open({ backend });
      const fds = openFdCount();
      // Before any device, the IOAS has the whole IOVA space: a window may sit on the MSI range.
      const window = space.reserve(MSI_BYTES, { iova: MSI_START });
      assert.throws(() => space.openDevice(BDF.ivshmem), {
        name: 'IovaAllocatorError',
        code: 'EBUSY',
        message: new RegExp(`${BDF.ivshmem}.*reserves IOVAs.*0xfee00000`),
      });
      assert.equal(openFdCount(), fds, 'the device file is closed');
      const child = openInChild(backend, BDF.ivshmem);
      assert.equal(child.status, 0, child.out);
      assert.match(child.out, new RegExp(`vendor ${IVSHMEM_VENDOR.toString(16)}`), 'another process opened it');
      assert.throws(() => space.openDevice(BDF.ivshmem), { code: 'EBUSY' }, 'the same failure again, not "already open"');
      window.release();
      using device = space.openDevice(BDF.ivshmem);
      assert.equal(device.config.read16(0), IVSHMEM_VENDOR);
      assert.ok(
        space.iovaRanges().every((r) => r.last < BigInt(MSI_START) || r.start >= BigInt(MSI_START + MSI_BYTES)),
        'attached now: the MSI range is reserved',
      );
    });
  }

  it('close() tears down interrupts, regions, P2P providers and the fd before a throwing close listener, and reports its error after', () => {
    using space = AddressSpace.open({ backend });
    space.openDevice(BDF.nvme).close(); // type1 keeps the group open: count from here
    const fds = openFdCount();
    const device = space.openDevice(BDF.nvme);
    const vectors = device.interrupts.enableMsix(2);
    const bar = device.bar(0);
    const buffer = bar.buffer;
    const provider = new P2PProvider(device, 0);
    if (backend === 'iommufd') space.mapPhysList(PhysList.p2p(provider, [{ offset: 0, length: 4096 }])).unmap(); // a dma-buf cached in the provider
    const boom = new Error('a close listener failed');
    const seen: string[] = [];
    device.on('close', () => {
      seen.push(
        `closed=${device.isClosed} vectors=${vectors.every((v) => v.isClosed)} provider=${provider.isClosed} fds=${openFdCount() - fds}`,
      );
      throw boom;
    });
    assert.throws(
      () => device.close(),
      (err) => err === boom,
    );
    assert.deepEqual(seen, ['closed=true vectors=true provider=true fds=0'], 'the listener ran once, after the teardown');
    assert.equal(device.isClosed, true);
    assert.equal(buffer.byteLength, 0, "the BAR's view is unmapped");
    assert.throws(() => bar.read32(0), { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => device.interrupts, { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => space.mapPhysList(PhysList.p2p(provider, [{ offset: 0, length: 4096 }])), { code: 'ERR_VFIO_CLOSED' });
    assert.equal(openFdCount(), fds, 'no file descriptor left: device, eventfds, dma-bufs');
    device.close(); // idempotent: no second event, no error
    assert.equal(seen.length, 1);
    using again = space.openDevice(BDF.nvme);
    assert.equal(again.interrupts.enableMsix(2).length, 2, 'the device is usable again');
  });

  it('throwing listeners of the device or of a provider keep nothing from revoking; the first error comes after', () => {
    using space = AddressSpace.open({ backend });
    using device = space.openDevice(BDF.ivshmem);
    const order: string[] = [];
    const deviceBoom = new Error('a memory-disabled listener failed');
    const providerBoom = new Error('a revoked listener failed');
    device.on('memory-disabled', () => {
      order.push('device');
      throw deviceBoom;
    }); // registered before the provider existed
    using provider = new P2PProvider(device, 2);
    provider.on('revoked', () => {
      order.push('provider');
      throw providerBoom;
    }); // registered before the mapping's own
    const m = space.mapPhysList(PhysList.p2p(provider, [{ offset: 0x70000, length: 4096 }]));
    let revoked = 0;
    provider.on('revoked', () => revoked++);
    assert.throws(
      () => device.setMemoryEnabled(false),
      (err) => err === providerBoom,
    );
    assert.deepEqual(order, ['provider', 'device'], 'the providers first, then the device listeners, each of them');
    assert.equal(revoked, 1, 'every revoked listener ran');
    assert.equal(m.revoked, backend === 'iommufd', 'iommufd mappings are marked revoked (type1 holds the BAR address)');
    device.setMemoryEnabled(true);
    m.unmap();
  });

  it('a throwing reset listener keeps nothing from revoking; its error comes after', () => {
    using space = AddressSpace.open({ backend });
    using nvme = space.openDevice(BDF.nvme);
    const boom = new Error('a reset listener failed');
    nvme.on('reset', () => {
      throw boom;
    });
    using provider = new P2PProvider(nvme, 0);
    let revoked = 0;
    provider.on('revoked', () => revoked++);
    const m = space.mapPhysList(PhysList.p2p(provider, [{ offset: 0, length: 4096 }]));
    assert.throws(
      () => nvme.reset(),
      (err) => err === boom,
    );
    assert.equal(revoked, 1);
    assert.equal(m.revoked, backend === 'iommufd');
    m.unmap();
  });

  it('a raw config write that clears memory enable counts as memory disabled; other Command writes do not', () => {
    using space = AddressSpace.open({ backend });
    using device = space.openDevice(BDF.ivshmem);
    using provider = new P2PProvider(device, 2);
    let revoked = 0;
    let disabled = 0;
    provider.on('revoked', () => revoked++);
    device.on('memory-disabled', () => disabled++);
    const cmd = device.config.read16(PCI_COMMAND);
    assert.ok(cmd & PCI_COMMAND_MEMORY, 'ivshmem decodes memory');
    const m = space.mapPhysList(PhysList.p2p(provider, [{ offset: 0x71000, length: 4096 }]));
    device.config.write16(PCI_COMMAND, cmd | PCI_COMMAND_MASTER);
    device.config.write8(PCI_COMMAND + 1, cmd >> 8); // the high byte: the kernel revokes nothing either
    assert.deepEqual([revoked, disabled, m.revoked], [0, 0, false], 'memory stayed enabled');
    device.config.write16(PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY);
    assert.deepEqual([revoked, disabled, m.revoked], [1, 1, backend === 'iommufd']);
    device.config.write16(PCI_COMMAND, cmd);
    device.config.writeBytes(PCI_COMMAND, new Uint8Array([cmd & ~PCI_COMMAND_MEMORY & 0xff, cmd >> 8]));
    assert.deepEqual([revoked, disabled], [2, 2], 'writeBytes over the Command register');
    device.config.write32(PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY); // Command and (write-1-to-clear) Status
    assert.deepEqual([revoked, disabled], [3, 3], 'a 32-bit write from the Command register');
    device.setMemoryEnabled(false);
    assert.deepEqual([revoked, disabled], [4, 4], 'setMemoryEnabled(false) once, not twice');
    device.config.write16(PCI_COMMAND, cmd);
    assert.ok(device.config.read16(PCI_COMMAND) & PCI_COMMAND_MEMORY);
    m.unmap();
  });

  it('open/close cycles of P2P providers and interrupts leave the listener counts at their baseline and warn of nothing', async () => {
    using space = AddressSpace.open({ backend });
    using device = space.openDevice(BDF.nvme);
    const events = ['reset', 'memory-disabled', 'close'];
    const counts = (): number[] => events.map((e) => device.listenerCount(e));
    const baseline = counts();
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      const refs = cycles(device, 30);
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      assert.deepEqual(counts(), baseline);
      assert.deepEqual(
        warnings.map((w) => w.name),
        [],
      );
      await collectGarbage();
      assert.equal(refs.filter((r) => r.deref() !== undefined).length, 0, 'the device holds nothing closed');
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('IommufdContext: closed by its owner only', () => {
  if (KERNEL === 'debian') {
    it("is absent: Debian's stock kernel is built without CONFIG_IOMMUFD", () => {
      assert.throws(() => new IommufdContext(), { name: 'VfioError', code: 'ENOENT', syscall: 'open' });
    });
    return;
  }

  it('a space that borrowed it releases its IOAS only: a second space works in it after the first closed', async () => {
    using ctx = new IommufdContext();
    const first = AddressSpace.open({ iommufd: ctx });
    first.openDevice(BDF.ivshmem);
    first.close();
    assert.equal(ctx.isClosed, false);
    using second = AddressSpace.open({ iommufd: ctx });
    using edu = EduDevice.open(second, BDF.edu);
    using buf = DmaBuffer.allocate(8192);
    const m = second.map(buf, { limit: EDU_DMA_LIMIT });
    const data = pattern(300, 12);
    buf.bytes.set(data);
    await edu.dmaToDevice(m.iova, 0, data.length);
    await edu.dmaFromDevice(0, m.iova + 4096n, data.length);
    assert.deepEqual(buf.bytes.subarray(4096, 4096 + data.length), data);
  });

  it('refuses to close while a space uses it, saying how many; then closes, idempotently, with Symbol.dispose too', () => {
    const fds = openFdCount();
    const ctx = new IommufdContext();
    const a = AddressSpace.open({ iommufd: ctx });
    const b = AddressSpace.open({ iommufd: ctx });
    assert.throws(() => ctx.close(), { name: 'VfioStateError', code: 'ERR_VFIO_BUSY', message: /2 address spaces/ });
    a.close();
    assert.throws(() => ctx[Symbol.dispose](), { code: 'ERR_VFIO_BUSY', message: /1 address space\b/ });
    assert.equal(ctx.isClosed, false);
    b.reserve(4096).release(); // still working
    b.close();
    ctx.close();
    ctx.close();
    ctx[Symbol.dispose]();
    assert.equal(ctx.isClosed, true);
    assert.equal(openFdCount(), fds, '/dev/iommu is closed');
    assert.throws(() => AddressSpace.open({ iommufd: ctx }), { name: 'VfioStateError', code: 'ERR_VFIO_CLOSED' });
    assert.equal(openFdCount(), fds);
  });

  it('a space with a context of its own closes it', () => {
    const fds = openFdCount();
    const space = AddressSpace.open({ backend: 'iommufd' });
    space.openDevice(BDF.ivshmem);
    space.close();
    assert.equal(openFdCount(), fds);
  });
});
