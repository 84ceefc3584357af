/**
 * phys_list and the two-step mapping with CPU memory: scatter-gather into
 * one contiguous IOVA range, proven by what edu reads and writes across
 * fragment boundaries; rollback when a fragment fails; IOMMU_IOAS_COPY.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { AddressSpace } from '../../lib/address-space';
import { EduDevice, EDU_DMA_LIMIT } from '../../lib/drivers/edu';
import { IommufdContext } from '../../lib/iommu/iommufd';
import { FlatFragments } from '../../lib/iommu/backend';
import { DmaBuffer, HUGE_PAGE_SIZE } from '../../lib/memory';
import { CpuFragmentInput, PhysList } from '../../lib/phys-list';
import { BDF, eduFixture, forEachBackend, forEachIommuMode, KERNEL, pattern, procStatus } from '../support/guest';

const PAGE = 4096;

/** 9 fragments from 9 buffers: anonymous, hugetlb (2), memfd (mapped as a file under iommufd); unaligned head and tail. */
function scatterList(backend: string): { list: PhysList; buffers: DmaBuffer[]; parts: CpuFragmentInput[] } {
  const anon = (pages: number): DmaBuffer => DmaBuffer.allocate(pages * PAGE);
  const buffers = [
    anon(1),
    DmaBuffer.allocate(HUGE_PAGE_SIZE, { kind: 'hugetlb' }),
    anon(2),
    DmaBuffer.allocate(2 * PAGE, { kind: 'memfd' }),
    anon(1),
    DmaBuffer.allocate(HUGE_PAGE_SIZE, { kind: 'hugetlb' }),
    anon(3),
    anon(1),
    anon(1),
  ];
  const parts: CpuFragmentInput[] = [
    { buffer: buffers[0], offset: 0x900 }, // starts inside its page: the mapping's IOVA keeps that offset
    { buffer: buffers[1], offset: HUGE_PAGE_SIZE - 2n * 4096n }, // the last two pages of a huge page
    { buffer: buffers[2] },
    { buffer: buffers[3], asFile: backend === 'iommufd' },
    { buffer: buffers[4] },
    { buffer: buffers[5], offset: 4096, length: 4096 },
    { buffer: buffers[6], offset: 4096 },
    { buffer: buffers[7] },
    { buffer: buffers[8], length: 0x345 }, // ends inside its page
  ];
  return { list: PhysList.cpu(parts), buffers, parts };
}

/** The bytes of the list, fragment after fragment, as the device should see them. */
function concatenation(parts: CpuFragmentInput[]): Uint8Array {
  const chunks = parts.map((p) => {
    const off = Number(p.offset ?? 0);
    const len = p.length === undefined ? Number(p.buffer.length) - off : Number(p.length);
    return p.buffer.bytes.subarray(off, off + len);
  });
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

describe('PhysList validation', () => {
  it('accepts unaligned outer ends only', () => {
    using a = DmaBuffer.allocate(2 * PAGE);
    using b = DmaBuffer.allocate(2 * PAGE);
    assert.throws(() => PhysList.cpu([{ buffer: a, length: 100 }, { buffer: b }]), {
      name: 'RangeError',
      message: /fragment 0 ends at 0x64, inside a page/,
    });
    assert.throws(() => PhysList.cpu([{ buffer: a }, { buffer: b, offset: 8 }]), {
      name: 'RangeError',
      message: /fragment 1 starts at offset 0x8/,
    });
    assert.throws(() => PhysList.cpu([]), RangeError);
    assert.throws(() => PhysList.cpu([{ buffer: a, offset: 4096, length: 8192 }]), { name: 'RangeError', message: /outside/ });
    assert.throws(() => PhysList.cpu([{ buffer: {} as DmaBuffer }]), TypeError);
    assert.throws(() => PhysList.cpu([{ buffer: a, asFile: true }]), { name: 'TypeError', message: /memfd/ });
    const l = PhysList.cpu([
      { buffer: a, offset: 0x10 },
      { buffer: b, length: 0x20 },
    ]);
    assert.equal(l.length, 2n * 4096n - 0x10n + 0x20n);
    assert.equal(l.headOffset, 0x10n);
    assert.equal(l.span, 3n * 4096n);
  });
});

forEachIommuMode('phys_list of CPU memory', (mode) => {
  const { backend } = mode;
  const fx = eduFixture(mode);
  let space: AddressSpace;
  let edu: EduDevice;
  beforeEach(() => ({ space, edu } = fx));

  it('maps 9 fragments of 9 buffers (anonymous, hugetlb, memfd) contiguously; edu reads the concatenation across every boundary', async () => {
    const { list, buffers, parts } = scatterList(backend);
    buffers.forEach((b, i) => b.bytes.set(pattern(Number(b.length), 100 + i)));
    using window = space.reserve(list.span + 8n * 4096n, { limit: EDU_DMA_LIMIT });
    const m = window.link(list, 4096);
    assert.equal(m.iova, window.iova + 4096n + 0x900n);
    assert.equal(m.length, list.length);
    const want = concatenation(parts);
    using out = DmaBuffer.allocate(PAGE);
    const mo = space.map(out, { limit: EDU_DMA_LIMIT });
    // Fragment boundaries in list offsets; read 4000 bytes around each one.
    let boundary = 0;
    for (const p of parts.slice(0, -1)) {
      boundary += Number(p.length ?? p.buffer.length - BigInt(p.offset ?? 0));
      const from = Math.max(0, boundary - 2000);
      const n = Math.min(4000, want.length - from); // not past the list's last byte
      await edu.dmaToDevice(m.iova + BigInt(from), 0, n);
      await edu.dmaFromDevice(0, mo.iova, n);
      assert.deepEqual(out.bytes.subarray(0, n), want.subarray(from, from + n), `across the boundary at list offset ${boundary}`);
    }
    window.release();
    assert.equal(m.active, false);
    for (const b of buffers) b.close();
  });

  it('a device write across boundaries lands in the right buffers', async () => {
    const { list, buffers, parts } = scatterList(backend);
    for (const b of buffers) b.bytes.fill(0);
    const m = space.mapPhysList(list, { limit: EDU_DMA_LIMIT });
    using src = DmaBuffer.allocate(PAGE);
    const ms = space.map(src, { limit: EDU_DMA_LIMIT });
    const data = pattern(4000, 5);
    src.bytes.set(data);
    await edu.dmaToDevice(ms.iova, 0, 4000);
    // The device writes 4000 bytes starting 1000 bytes before the end of fragment 0 (0x700 bytes long):
    // list offset 0x700 - 1000 is inside fragment 0; the write crosses into fragment 1 and ends in it.
    const start = 0x700 - 1000;
    await edu.dmaFromDevice(0, m.iova + BigInt(start), 4000);
    const got = concatenation(parts).subarray(start, start + 4000);
    assert.deepEqual(got, data);
    assert.deepEqual(buffers[0].bytes.subarray(0x900 + start, 4096), data.subarray(0, 1000));
    assert.deepEqual(buffers[1].bytes.subarray(Number(HUGE_PAGE_SIZE) - 8192, Number(HUGE_PAGE_SIZE) - 8192 + 3000), data.subarray(1000));
    assert.ok(
      buffers[2].bytes.every((b) => b === 0),
      'nothing beyond the write changed',
    );
    m.unmap();
    for (const b of buffers) b.close();
  });

  it('links one native call for the whole list, and can link, unlink, relink in one window', () => {
    using a = DmaBuffer.allocate(4 * PAGE);
    using window = space.reserve(8 * PAGE);
    const l1 = window.link(PhysList.cpu([{ buffer: a }]), 0);
    assert.throws(() => window.link(PhysList.cpu([{ buffer: a }]), 0), { name: 'VfioError', code: 'EEXIST' });
    const l2 = window.link(PhysList.cpu([{ buffer: a }]), 4 * PAGE);
    assert.throws(() => window.link(PhysList.cpu([{ buffer: a }]), 5 * PAGE), { name: 'RangeError', message: /window has/ });
    l1.unmap();
    const l3 = window.link(PhysList.cpu([{ buffer: a }]), 0);
    assert.equal(l3.iova, window.iova);
    l2.unmap();
    l3.unmap();
  });

  it('refuses encrypted memory at mapping time, with nothing mapped', () => {
    const list = PhysList.encrypted([{ offset: 0, length: PAGE }]);
    assert.equal(list.kind, 'encrypted');
    using window = space.reserve(PAGE);
    assert.throws(() => window.link(list), { code: 'ERR_VFIO_ENCRYPTED', message: /no backing/ });
    assert.throws(() => space.mapPhysList(list), { code: 'ERR_VFIO_ENCRYPTED' });
  });

  it('rolls back when a fragment in the middle cannot be pinned: the same window links again at once', async () => {
    using ivshmem = space.openDevice(BDF.ivshmem);
    const info = ivshmem.regionInfo(2);
    const readOnlyBar = ivshmem.native.mmap(info.offset, 4096n, false); // a device may not write there: pinning for write fails
    const good = [0, 1, 2, 3].map(() => DmaBuffer.allocate(2 * PAGE));
    using window = space.reserve(16 * PAGE, { limit: EDU_DMA_LIMIT });
    const before = space.pinCount();
    const flat: FlatFragments = [
      good[0].native,
      0n,
      8192n,
      false,
      good[1].native,
      0n,
      8192n,
      false,
      readOnlyBar,
      0n,
      4096n,
      false,
      good[2].native,
      0n,
      8192n,
      false,
    ];
    assert.throws(() => space.backend.mapList(window.iova, flat, { read: true, write: true }), {
      name: 'VfioError',
      syscall: backend === 'iommufd' ? 'ioctl(IOMMU_IOAS_MAP)' : 'ioctl(VFIO_IOMMU_MAP_DMA)',
    });
    assert.equal(space.pinCount(), before, 'nothing stays pinned');
    const again = window.link(PhysList.cpu(good.map((buffer) => ({ buffer }))));
    good[3].bytes.set(pattern(100, 9), 4096);
    await edu.dmaToDevice(again.iova + 3n * 8192n + 4096n, 0, 100);
    await edu.dmaFromDevice(0, again.iova, 100);
    assert.deepEqual(good[0].bytes.subarray(0, 100), pattern(100, 9), 'the relinked window works end to end');
    again.unmap();
    readOnlyBar.close();
    for (const g of good) g.close();
  });

  const failNth = '/proc/thread-self/fail-nth';
  if (KERNEL === 'custom') {
    it("rolls back under the kernel's fault injection at every failure point of a 6-fragment list", function () {
      this.timeout(120_000);
      const bufs = [0, 1, 2, 3, 4, 5].map(() => DmaBuffer.allocate(2 * PAGE));
      const list = PhysList.cpu(bufs.map((buffer) => ({ buffer })));
      using window = space.reserve(list.span);
      const pinsBefore = space.pinCount();
      // Let slab allocations that may sleep fail too (failslab ignores them by default).
      const ignoreWait = '/sys/kernel/debug/failslab/ignore-gfp-wait';
      const ignoreWaitBefore = fs.readFileSync(ignoreWait, 'utf8').trim();
      fs.writeFileSync(ignoreWait, 'N');
      const pinnedBefore = procStatus(mode.byIommufd ? 'VmPin' : 'VmLck');
      // As the kernel's iommufd_fail_nth selftest does: fail the n-th injection
      // point of one link, for n = 1, 2, ... until the link makes fewer than n.
      const nth = fs.openSync(failNth, 'r+');
      const remaining = Buffer.alloc(32);
      let failures = 0;
      let n = 1;
      for (; n < 2000; n++) {
        fs.writeSync(nth, String(n), 0);
        let linked;
        let failed = false;
        try {
          linked = window.link(list);
        } catch {
          failed = true;
        }
        const left = remaining
          .subarray(0, fs.readSync(nth, remaining, 0, remaining.length, 0))
          .toString()
          .trim();
        fs.writeSync(nth, '0', 0);
        if (failed) {
          failures++;
          assert.equal(space.pinCount(), pinsBefore, `fail-nth ${n}: native pins rolled back`);
          assert.equal(procStatus(mode.byIommufd ? 'VmPin' : 'VmLck'), pinnedBefore, `fail-nth ${n}: kernel pins rolled back`);
        } else {
          linked?.unmap();
        }
        if (left !== '0') break; // the link did not reach the n-th point: every point has been tried
      }
      fs.closeSync(nth);
      fs.writeFileSync(ignoreWait, ignoreWaitBefore);
      assert.ok(
        failures >= list.fragments.length,
        `of ${n - 1} injection points, ${failures} made the link fail: at least one per fragment, so failures after fragments 0..k-1 were mapped were rolled back`,
      );
      const ok = window.link(list); // and the window is clean
      ok.unmap();
      for (const b of bufs) b.close();
    });
  } else {
    it('has no fault injection on the stock kernel (no CONFIG_FAULT_INJECTION)', () => {
      assert.equal(fs.existsSync(failNth), false);
    });
  }
});

forEachBackend('IOMMU_IOAS_COPY', (backend) => {
  if (backend === 'type1') {
    it('is an iommufd operation: type1 address spaces refuse it clearly', () => {
      using a = AddressSpace.open({ backend });
      using b = AddressSpace.open({ backend });
      EduDevice.open(a, BDF.edu);
      using buf = DmaBuffer.allocate(PAGE);
      const m = a.map(buf);
      assert.throws(() => b.copyFrom(a, m), { code: 'ERR_VFIO_BACKEND' });
    });
    return;
  }
  it('maps the same pages into a second IOAS without pinning again; edu reaches them there', async () => {
    using ctx = new IommufdContext(); // its owner closes it, after the address spaces
    using source = AddressSpace.open({ backend, iommufd: ctx });
    using target = AddressSpace.open({ backend, iommufd: ctx });
    using edu = EduDevice.open(target, BDF.edu);
    source.openDevice(BDF.ivshmem); // a device in the source IOAS: iommufd pins its mappings now
    using buf = DmaBuffer.allocate(16 * PAGE);
    const pinned0 = procStatus('VmPin');
    const m = source.map(buf);
    assert.equal(procStatus('VmPin') - pinned0, 64);
    const copy = target.copyFrom(source, m, { limit: EDU_DMA_LIMIT });
    assert.equal(procStatus('VmPin') - pinned0, 64, 'the copy pinned nothing more');
    buf.bytes.set(pattern(500, 3), 8192);
    await edu.dmaToDevice(copy.iova + 8192n, 0, 500);
    await edu.dmaFromDevice(0, copy.iova, 500);
    assert.deepEqual(buf.bytes.subarray(0, 500), pattern(500, 3));
    m.unmap();
    assert.equal(copy.active, true, 'the copy lives on its own');
    await edu.dmaFromDevice(0, copy.iova + 4096n, 500);
    assert.deepEqual(buf.bytes.subarray(4096, 4596), pattern(500, 3));
    copy.unmap();
    assert.equal(procStatus('VmPin'), pinned0);
  });
});
