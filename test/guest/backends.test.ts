/**
 * The two IOMMU backends' own interfaces: how 'auto' chooses, IOVA ranges,
 * IOMMU_OPTION, type1's info and its capabilities, and the errors a user
 * meets first: permissions and RLIMIT_MEMLOCK.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AddressSpace } from '../../lib/address-space';
import { IommufdBackend, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_RLIMIT_MODE } from '../../lib/iommu/iommufd';
import { Type1Backend, VFIO_TYPE1v2_IOMMU } from '../../lib/iommu/type1';
import { DmaBuffer } from '../../lib/memory';
import { BDF, eduFixture, forEachBackend, KERNEL } from '../support/guest';

const ROOT = path.resolve(__dirname, '../../..');

/** Runs a snippet of the library in a child process with `wrap` (setpriv, prlimit) before node. */
function runChild(wrap: string[], body: string): { status: number | null; out: string } {
  const script = `const lib = require(${JSON.stringify(path.join(ROOT, 'dist/lib'))});\n(async () => { ${body} })().catch((e) => { console.log(JSON.stringify({ name: e.name, code: e.code, errno: e.errno, syscall: e.syscall, message: e.message })); process.exit(3); });`;
  const r = spawnSync(wrap[0], [...wrap.slice(1), process.execPath, '-e', script], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('backend choice', () => {
  it(`'auto' picks ${KERNEL === 'custom' ? 'iommufd (it has /dev/iommu and VFIO cdevs)' : 'type1 (no iommufd on this kernel)'}`, () => {
    using space = AddressSpace.open();
    assert.equal(space.kind, KERNEL === 'custom' ? 'iommufd' : 'type1');
  });
});

forEachBackend('backend interfaces', (backend) => {
  const fx = eduFixture(backend);

  it("reports the vIOMMU's IOVA ranges with the MSI window reserved (the array grows to fit)", () => {
    const ranges = fx.space.iovaRanges();
    assert.deepEqual(ranges.slice(0, 2), [
      { start: 0n, last: 0xfedfffffn },
      { start: 0xfef00000n, last: ranges[1].last },
    ]);
    assert.ok(ranges[1].last >= 0x7fffffffffn);
  });

  if (backend === 'iommufd') {
    it('IOMMU_OPTION: reads and sets the IOAS huge-page option and reads the rlimit mode', () => {
      const b = fx.space.backend as IommufdBackend;
      assert.equal(b.context.getOption(IOMMU_OPTION_HUGE_PAGES, b.ioas), 1n);
      using other = AddressSpace.open({ backend, iommufd: b.context });
      const ioas = (other.backend as IommufdBackend).ioas;
      b.context.setOption(IOMMU_OPTION_HUGE_PAGES, 0n, ioas);
      assert.equal(b.context.getOption(IOMMU_OPTION_HUGE_PAGES, ioas), 0n);
      assert.equal(b.context.getOption(IOMMU_OPTION_RLIMIT_MODE), 0n);
      assert.throws(() => b.context.getOption(99), { name: 'VfioError', code: 'EOPNOTSUPP', syscall: 'ioctl(IOMMU_OPTION)' });
    });
    it('IOMMU_IOAS_ALLOW_IOVAS bounds where the kernel may choose an IOVA', () => {
      const b = fx.space.backend as IommufdBackend;
      using other = AddressSpace.open({ backend, iommufd: b.context });
      const ioas = (other.backend as IommufdBackend).ioas;
      using buf = DmaBuffer.allocate(4096);
      b.context.native.allowIovas(ioas, [{ start: 0x5000000n, last: 0x5000fffn }]);
      const iova = b.context.native.map(ioas, buf.native, 0n, 4096n, null, 6, false); // kernel's choice
      assert.equal(iova, 0x5000000n);
      assert.throws(() => b.context.native.map(ioas, buf.native, 0n, 4096n, null, 6, false), {
        name: 'VfioError',
        syscall: 'ioctl(IOMMU_IOAS_MAP)',
      });
      b.context.native.unmap(ioas, iova, 4096n);
    });

    it('detaching the device from its IOAS takes its DMA away; attaching again gives it back', async () => {
      using buf = DmaBuffer.allocate(4096);
      const m = fx.space.map(buf, { limit: 1n << 28n });
      buf.bytes.fill(7);
      const native = fx.edu.device.native;
      native.detachPt();
      await fx.edu.dmaToDevice(m.iova, 0, 64); // blocked: the device reaches no IOAS
      native.attachPt((fx.space.backend as IommufdBackend).ioas);
      buf.bytes.fill(0, 0, 64);
      await fx.edu.dmaFromDevice(0, m.iova, 64);
      assert.ok(
        buf.bytes.subarray(0, 64).every((x) => x !== 7),
        'what the detached device read was not memory',
      );
      buf.bytes.fill(9, 0, 64);
      await fx.edu.dmaToDevice(m.iova, 0, 64);
      buf.bytes.fill(0, 0, 64);
      await fx.edu.dmaFromDevice(0, m.iova, 64);
      assert.ok(
        buf.bytes.subarray(0, 64).every((x) => x === 9),
        'attached again, the device moves bytes',
      );
      m.unmap();
    });
  } else {
    it('type1: API version, type1v2 chosen, info with page sizes and DMA mappings available (one fewer per map)', () => {
      const b = fx.space.backend as Type1Backend;
      assert.equal(b.container.apiVersion(), 0);
      assert.equal(b.type, VFIO_TYPE1v2_IOMMU);
      const before = b.info();
      assert.ok(before.iovaPgsizes & 4096n);
      assert.equal(typeof before.dmaAvail, 'number');
      using buf = DmaBuffer.allocate(4096);
      const m = fx.space.map(buf);
      assert.equal(b.info().dmaAvail, (before.dmaAvail ?? 0) - 1);
      m.unmap();
      assert.equal(b.info().dmaAvail, before.dmaAvail);
    });
  }

  it('says which permissions to check when /dev/vfio or /dev/iommu is not open to the user', () => {
    const node =
      backend === 'iommufd'
        ? '/dev/iommu'
        : `/dev/vfio/${fs.readlinkSync(`/sys/bus/pci/devices/${BDF.nvme}/iommu_group`).split('/').pop()}`;
    const r = runChild(
      ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'],
      `const s = lib.AddressSpace.open({ backend: '${backend}' }); s.openDevice('${BDF.nvme}');`,
    );
    assert.equal(r.status, 3, r.out);
    const err = JSON.parse(r.out);
    assert.equal(err.name, 'VfioError');
    assert.equal(err.code, 'EACCES');
    assert.equal(err.errno, -13);
    assert.equal(err.syscall, 'open');
    assert.match(err.message, /permissions on \/dev\/vfio and \/dev\/iommu/);
    assert.ok(fs.existsSync(node));
  });

  it('says to raise RLIMIT_MEMLOCK when pinning goes past it', () => {
    const r = runChild(
      ['setpriv', '--bounding-set=-ipc_lock', '--inh-caps=-ipc_lock', 'prlimit', '--memlock=65536:65536'],
      `const s = lib.AddressSpace.open({ backend: '${backend}' }); s.openDevice('${BDF.nvme}'); s.map(lib.DmaBuffer.allocate(1 << 20));`,
    );
    assert.equal(r.status, 3, r.out);
    const err = JSON.parse(r.out);
    assert.equal(err.code, 'ENOMEM');
    assert.equal(err.syscall, backend === 'iommufd' ? 'ioctl(IOMMU_IOAS_MAP)' : 'ioctl(VFIO_IOMMU_MAP_DMA)');
    assert.match(err.message, /RLIMIT_MEMLOCK/);
  });
});
