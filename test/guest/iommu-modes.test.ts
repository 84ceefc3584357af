/**
 * The IOMMU modes of the kernel's VFIO selftests, one by one: each opens
 * what it says (which device node, which type1 interface, which driver
 * accounts the pinned pages), moves bytes through edu, and maps a 2 MiB
 * hugetlb buffer with the IOMMU page size the mode gives, read from the
 * Intel IOMMU's own page table (its debugfs dump), as the selftests'
 * vfio_dma_mapping_test.c does; the entries must also point at the
 * buffer's physical pages (/proc/self/pagemap).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { AddressSpace } from '../../lib/address-space';
import { EDU_DMA_LIMIT } from '../../lib/drivers/edu';
import { IommufdBackend } from '../../lib/iommu/iommufd';
import { Type1Backend, VFIO_CONTAINER_PATH, IOMMUFD_CONTAINER_PATH, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU } from '../../lib/iommu/type1';
import { DmaBuffer, freeHugePages, HUGE_PAGE_SIZE } from '../../lib/memory';
import { BDF, eduFixture, forEachIommuMode, IommuMode, KERNEL, pattern, procStatus } from '../support/guest';

const PAGE = 4096n;
/** The Intel IOMMU driver's debugfs directory (CONFIG_INTEL_IOMMU_DEBUGFS). */
const INTEL_DEBUGFS = '/sys/kernel/debug/iommu/intel';
/** A VT-d page-table entry's address bits (12..51). */
const ADDRESS_MASK = ((1n << 52n) - 1n) & ~(PAGE - 1n);
/** The superpage bit of a VT-d directory entry (PS, bit 7). */
const SUPERPAGE = 1n << 7n;

/** One leaf of the device's IOMMU page table, as the debugfs dump prints it. */
interface Leaf {
  /** The IOVA the leaf maps from. */
  iova: bigint;
  /** Bytes it maps: 4 KiB (a PTE), 2 MiB (a superpage PDE) or 1 GiB (a superpage PDPE). */
  size: bigint;
  /** The leaf entry itself. */
  entry: bigint;
}

/**
 * The leaves of `bdf`'s IOMMU page table in [iova, iova + length), from
 * /sys/kernel/debug/iommu/intel/BDF/domain_translation_struct: one line per
 * leaf, `0xIOVA_PFN |` then the entries walked from PML5E down to the leaf
 * (drivers/iommu/intel/debugfs.c, dump_page_info: a 2 MiB superpage's line
 * ends at its PDE, a 4 KiB page's at its PTE).
 */
function iommuLeaves(bdf: string, iova: bigint, length: bigint): Leaf[] {
  const text = fs.readFileSync(`${INTEL_DEBUGFS}/${bdf}/domain_translation_struct`, 'utf8');
  assert.match(text, new RegExp(`^Device ${bdf} @0x[0-9a-f]+\\n`), 'the dump names the device and its page table');
  const leaves: Leaf[] = [];
  for (const line of text.split('\n')) {
    const m = /^0x([0-9a-f]+) \|\t(.*)$/.exec(line);
    if (!m) continue;
    const path = m[2].split('\t').map((v) => BigInt(v));
    const size = path.length === 5 ? PAGE : path.length === 4 ? HUGE_PAGE_SIZE : 1n << 30n;
    const at = BigInt(`0x${m[1]}`) * PAGE;
    if (at + size > iova && at < iova + length) leaves.push({ iova: at, size, entry: path[path.length - 1] });
  }
  return leaves;
}

/** The physical address of the page at `address` in this process (root reads real PFNs from pagemap). */
function physicalAddress(address: bigint): bigint {
  const fd = fs.openSync('/proc/self/pagemap', 'r');
  try {
    const b = Buffer.alloc(8);
    fs.readSync(fd, b, 0, 8, Number((address / PAGE) * 8n));
    const v = b.readBigUInt64LE();
    assert.ok(v & (1n << 63n), `page at 0x${address.toString(16)} is present`);
    return (v & ((1n << 55n) - 1n)) * PAGE;
  } finally {
    fs.closeSync(fd);
  }
}

/** What each mode is, in the words of its test titles. */
function describeMode(mode: IommuMode): string {
  if (mode.backend === 'iommufd') return 'an IOAS in /dev/iommu, edu bound through its VFIO cdev';
  const node = mode.byIommufd ? `${IOMMUFD_CONTAINER_PATH} as iommufd's compatibility container` : `${VFIO_CONTAINER_PATH}`;
  return `${node} with ${mode.type1 === 'v2' ? 'VFIO_TYPE1v2_IOMMU' : 'VFIO_TYPE1_IOMMU'}, edu through its IOMMU group`;
}

/** The file an fd of this process is open on. */
function fdTarget(fd: number): string {
  return fs.readlinkSync(`/proc/self/fd/${fd}`);
}

describe('AddressSpace.open: IOMMU mode options', () => {
  it('names the argument it refuses, before any system call', () => {
    assert.throws(() => AddressSpace.open({ container: '' }), { name: 'TypeError', message: /^container must be a device node path/ });
    assert.throws(() => AddressSpace.open({ container: 7 as unknown as string }), { name: 'TypeError', message: /^container must/ });
    assert.throws(() => AddressSpace.open({ type1: 'v3' as 'v2' }), {
      name: 'TypeError',
      message: /^type1 must be 'auto', 'v1' or 'v2', not 'v3'/,
    });
    assert.throws(() => AddressSpace.open({ backend: 'iommufd', type1: 'v2' }), {
      name: 'TypeError',
      message: /^type1 applies to the type1 backend/,
    });
    assert.throws(() => AddressSpace.open({ backend: 'iommufd', container: IOMMUFD_CONTAINER_PATH }), {
      name: 'TypeError',
      message: /^container applies to the type1 backend/,
    });
    assert.throws(() => AddressSpace.open({ iommufd: {} as never }), { name: 'TypeError', message: /^iommufd must be an IommufdContext/ });
    assert.throws(() => AddressSpace.open(null as never), { name: 'TypeError', message: /^options must be an object/ });
  });

  it('opens the container it is given, and says which node is missing', () => {
    assert.throws(() => AddressSpace.open({ container: '/dev/vfio/nothing-here' }), {
      name: 'VfioError',
      code: 'ENOENT',
      syscall: 'open',
      detail: '/dev/vfio/nothing-here',
    });
    using space = AddressSpace.open({ type1: 'auto' }); // type1 implies the type1 backend under 'auto'
    assert.equal(space.kind, 'type1');
    assert.equal((space.backend as Type1Backend).containerPath, VFIO_CONTAINER_PATH);
  });
});

forEachIommuMode('IOMMU mode', (mode) => {
  const fx = eduFixture(mode);

  it(`opens ${describeMode(mode)}; the pinned pages count where ${mode.byIommufd ? 'iommufd' : 'vfio_iommu_type1'} counts them (${mode.byIommufd ? 'VmPin' : 'VmLck'})`, () => {
    const { space } = fx;
    assert.equal(space.kind, mode.backend);
    if (space.backend instanceof IommufdBackend) {
      assert.equal(fdTarget(space.backend.context.native.fd), '/dev/iommu');
    } else {
      const b = space.backend as Type1Backend;
      const node = mode.byIommufd ? IOMMUFD_CONTAINER_PATH : VFIO_CONTAINER_PATH;
      assert.equal(b.containerPath, node);
      assert.equal(fdTarget(b.container.fd), node);
      assert.equal(b.flavour, mode.type1);
      assert.equal(b.type, mode.type1 === 'v2' ? VFIO_TYPE1v2_IOMMU : VFIO_TYPE1_IOMMU);
    }
    const pin0 = procStatus('VmPin');
    const lck0 = procStatus('VmLck');
    using buf = DmaBuffer.allocate(16 * 4096);
    const m = space.map(buf);
    assert.deepEqual(
      { VmPin: procStatus('VmPin') - pin0, VmLck: procStatus('VmLck') - lck0 },
      mode.byIommufd ? { VmPin: 64, VmLck: 0 } : { VmPin: 0, VmLck: 64 },
      '64 kB pinned, accounted by the driver that serves the mode',
    );
    m.unmap();
    assert.deepEqual({ VmPin: procStatus('VmPin'), VmLck: procStatus('VmLck') }, { VmPin: pin0, VmLck: lck0 });
  });

  it('moves bytes: edu reads one mapped buffer and writes another; once unmapped, the IOVA reaches nothing', async () => {
    const { space, edu } = fx;
    using src = DmaBuffer.allocate(8192);
    using dst = DmaBuffer.allocate(8192);
    const ms = space.map(src, { limit: EDU_DMA_LIMIT });
    const md = space.map(dst, { limit: EDU_DMA_LIMIT });
    const data = pattern(4000, mode.name.length);
    src.bytes.set(data, 4096 + 50);
    dst.bytes.fill(0x5a);
    await edu.dmaToDevice(ms.iova + 4096n + 50n, 0, data.length);
    await edu.dmaFromDevice(0, md.iova + 7n, data.length);
    assert.deepEqual(dst.bytes.subarray(7, 7 + data.length), data);
    assert.equal(dst.bytes[6], 0x5a);
    assert.equal(dst.bytes[7 + data.length], 0x5a);
    const iova = md.iova;
    md.unmap();
    dst.bytes.fill(0x5a);
    await edu.dmaFromDevice(0, iova, 64); // blocked by the IOMMU
    assert.ok(
      dst.bytes.every((b) => b === 0x5a),
      'a DMA to the unmapped IOVA changed nothing',
    );
    ms.unmap();
  });

  if (KERNEL === 'custom') {
    // iommufd's type1 v1 emulation turns large IOMMU pages off (iopt_disable_large_pages: a v1 unmap may cut any
    // mapping, and a large IOPTE cannot be cut); every other mode maps a 2 MiB-aligned hugetlb page with one.
    const large = mode.name !== 'iommufd_compat_type1';
    it(`maps 2 MiB of hugetlb with ${large ? 'one 2 MiB IOMMU page' : '512 4 KiB IOMMU pages (iommufd emulates type1 v1 without large pages)'}, 4 KiB with a PTE; the entries point at the buffers' pages; unmapped, nothing is left`, async () => {
      const { space, edu } = fx;
      assert.ok(freeHugePages() > 0, 'the guest reserves huge pages (nodevfio.hugepages)');
      using huge = DmaBuffer.allocate(HUGE_PAGE_SIZE, { kind: 'hugetlb' });
      using small = DmaBuffer.allocate(4096);
      const mh = space.map(huge, { limit: EDU_DMA_LIMIT, align: HUGE_PAGE_SIZE });
      const ms = space.map(small, { limit: EDU_DMA_LIMIT });
      const hugeLeaves = iommuLeaves(BDF.edu, mh.iova, HUGE_PAGE_SIZE);
      const base = physicalAddress(huge.address);
      if (large) {
        assert.equal(hugeLeaves.length, 1, 'one leaf maps the 2 MiB');
        const [leaf] = hugeLeaves;
        assert.deepEqual({ iova: leaf.iova, size: leaf.size }, { iova: mh.iova, size: HUGE_PAGE_SIZE });
        assert.ok(leaf.entry & SUPERPAGE, 'the PDE is a superpage');
        assert.equal(leaf.entry & ADDRESS_MASK, base, 'the superpage is the hugetlb page');
      } else {
        assert.equal(hugeLeaves.length, 512, 'one PTE per 4 KiB');
        hugeLeaves.forEach((leaf, i) => {
          assert.deepEqual({ iova: leaf.iova, size: leaf.size }, { iova: mh.iova + BigInt(i) * PAGE, size: PAGE });
          assert.equal(leaf.entry & ADDRESS_MASK, base + BigInt(i) * PAGE, `PTE ${i} points into the hugetlb page`);
        });
      }
      const smallLeaves = iommuLeaves(BDF.edu, ms.iova, PAGE);
      assert.equal(smallLeaves.length, 1);
      assert.equal(smallLeaves[0].size, PAGE, 'a 4 KiB page is mapped by a PTE');
      assert.equal(smallLeaves[0].entry & ADDRESS_MASK, physicalAddress(small.address));
      // and the device reaches the whole 2 MiB through it: the last page to the first
      huge.bytes.set(pattern(256, 11), Number(HUGE_PAGE_SIZE) - 256);
      await edu.dmaToDevice(mh.iova + HUGE_PAGE_SIZE - 256n, 0, 256);
      await edu.dmaFromDevice(0, mh.iova, 256);
      assert.deepEqual(huge.bytes.subarray(0, 256), pattern(256, 11));
      mh.unmap();
      ms.unmap();
      assert.deepEqual(iommuLeaves(BDF.edu, mh.iova, HUGE_PAGE_SIZE), [], 'the 2 MiB is out of the page table');
      assert.deepEqual(iommuLeaves(BDF.edu, ms.iova, PAGE), [], 'the 4 KiB page is out of the page table');
    });
  } else {
    it("cannot check the IOMMU page size: Debian's stock kernel has no Intel IOMMU page-table dump (no CONFIG_INTEL_IOMMU_DEBUGFS)", () => {
      assert.match(fs.readFileSync('/proc/self/mounts', 'utf8'), /^debugfs \/sys\/kernel\/debug debugfs /m, 'debugfs is mounted');
      assert.equal(fs.existsSync(INTEL_DEBUGFS), false);
    });
  }

  if (mode.type1 === 'v1') {
    it(`v1: the kernel itself does not refuse an unmap that cuts a mapping (${mode.byIommufd ? 'iommufd cuts it' : 'VFIO unmaps it whole'}), so the backend refuses it first`, async () => {
      const { space, edu } = fx;
      const b = space.backend as Type1Backend;
      using buf = DmaBuffer.allocate(8192);
      using window = space.reserve(8192, { limit: EDU_DMA_LIMIT });
      const iova = window.iova;
      b.map(buf.native, 0n, 8192n, iova, { read: true, write: true });
      for (const [at, length] of [
        [iova, 4096n],
        [iova + 4096n, 4096n],
        [iova - 4096n, 8192n],
      ]) {
        assert.throws(() => b.unmap(at, length), {
          name: 'VfioStateError',
          code: 'ERR_VFIO_CUTS_MAPPING',
          message: /cover whole mappings/,
        });
      }
      // The kernel, asked directly (past the backend's check), to unmap the first page only:
      assert.equal(b.container.unmapDma(iova, 4096n, 0), mode.byIommufd ? 4096n : 8192n);
      using src = DmaBuffer.allocate(4096);
      const ms = space.map(src, { limit: EDU_DMA_LIMIT });
      src.bytes.set(pattern(64, 5));
      await edu.dmaToDevice(ms.iova, 0, 64); // edu's buffer now holds the pattern
      buf.bytes.fill(0);
      await edu.dmaFromDevice(0, iova + 4096n - 64n, 64); // the end of the first page
      await edu.dmaFromDevice(0, iova + 4096n, 64); // the start of the second
      assert.ok(
        buf.bytes.subarray(4096 - 64, 4096).every((x) => x === 0),
        'the first page is out of reach',
      );
      if (mode.byIommufd) assert.deepEqual(buf.bytes.subarray(4096, 4096 + 64), pattern(64, 5), 'the second page is still mapped');
      else
        assert.ok(
          buf.bytes.subarray(4096, 4096 + 64).every((x) => x === 0),
          'the second page went with the first',
        );
      ms.unmap();
      assert.equal(b.unmap(iova, 8192n), mode.byIommufd ? 4096n : 0n, 'the whole range unmaps what was left');
    });
  }
});
