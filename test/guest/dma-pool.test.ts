/**
 * DmaPool on real VFIO: lists of pool pieces link with one map ioctl per
 * contiguous run (counted by strace around each link in a child process,
 * and seen in the kernel: type1's count of free DMA entries, and unmaps that
 * would cut a run refused because the run is ONE mapping); edu's DMA proves
 * the bytes across run boundaries, through hugetlb pools mapped whole and
 * memfd pieces mapped as a file; type1's dma_entry_limit, when hit, is a
 * clear error with nothing left half-mapped.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AddressSpace } from '../../lib/address-space';
import { DmaPiece, DmaPool } from '../../lib/dma-pool';
import { EduDevice, EDU_DMA_LIMIT } from '../../lib/drivers/edu';
import { BackendKind } from '../../lib/iommu/backend';
import { Type1Backend } from '../../lib/iommu/type1';
import { DmaBuffer, HUGE_PAGE_SIZE } from '../../lib/memory';
import { PhysList } from '../../lib/phys-list';
import type { LinkedCase } from '../fixtures/dma-pool-link';
import { markerPath } from '../support/phys-runs';
import { BDF, collectGarbage, eduFixture, forEachBackend, mapsContain, pattern } from '../support/guest';

const PAGE = 4096;
/** Bytes per edu DMA of a page's worth: less than edu's whole 4 KiB buffer, whose last byte QEMU 7.2's edu must not reach. */
const DMA = 4000;
const CHILD = path.resolve(__dirname, '../fixtures/dma-pool-link.js');
const DMA_ENTRY_LIMIT = '/sys/module/vfio_iommu_type1/parameters/dma_entry_limit';

/** The map ioctls' request numbers (native/uapi: _IO(';', nr)), as strace prints them raw. */
const MAP_IOCTLS: Record<string, string> = {
  '0x3b85': 'IOMMU_IOAS_MAP',
  '0x3b8f': 'IOMMU_IOAS_MAP_FILE',
  '0x3b71': 'VFIO_IOMMU_MAP_DMA',
};

interface Traced {
  cases: LinkedCase[];
  /** Map ioctls between each case's markers, by name. */
  calls: Map<string, Record<string, number>>;
}

/** Runs the child under strace and counts the map ioctls each of its links made. */
function traceLinks(backend: BackendKind, bdf: string): Traced {
  const log = path.join(os.tmpdir(), `dma-pool-strace-${process.pid}.log`);
  const r = spawnSync(
    'strace',
    [
      '-f',
      '--seccomp-bpf',
      '-e',
      'trace=ioctl,access,faccessat,faccessat2',
      '-e',
      'raw=ioctl',
      '-o',
      log,
      process.execPath,
      CHILD,
      backend,
      bdf,
    ],
    { encoding: 'utf8', timeout: 300_000 },
  );
  assert.equal(r.status, 0, `strace or the child failed: ${r.error?.message ?? r.stderr}`);
  const cases = JSON.parse(r.stdout) as LinkedCase[];
  const begins = new Map(cases.map((c) => [`"${markerPath(c.name, 'begin')}"`, c.name]));
  const ends = new Set(cases.map((c) => `"${markerPath(c.name, 'end')}"`));
  const calls = new Map<string, Record<string, number>>();
  let current: string | undefined;
  for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
    const marker = /"\/node-vfio-marker\/[^"]*"/.exec(line)?.[0];
    if (marker !== undefined) {
      if (begins.has(marker)) calls.set((current = begins.get(marker)!), {});
      else if (ends.has(marker)) current = undefined;
      continue;
    }
    const request = /\bioctl\([^,]+, (0x[0-9a-f]+),/.exec(line)?.[1];
    const name = request === undefined ? undefined : MAP_IOCTLS[request];
    if (name !== undefined) {
      assert.ok(current, `a map ioctl outside any link: ${line}`);
      const counts = calls.get(current)!;
      counts[name] = (counts[name] ?? 0) + 1;
    }
  }
  fs.rmSync(log);
  return { cases, calls };
}

/** `count` one-page pieces of `pool`, each filled with its own pattern. */
function filledPieces(pool: DmaPool, count: number, seed: number): DmaPiece[] {
  return Array.from({ length: count }, (_, i) => {
    const p = pool.allocate(PAGE);
    p.bytes.set(pattern(PAGE, seed + i));
    return p;
  });
}

/** The pieces' bytes one after another, as a device sees a list of them. */
function concatenation(pieces: readonly DmaPiece[]): Uint8Array {
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of pieces) {
    out.set(p.bytes, at);
    at += p.length;
  }
  return out;
}

/** Reads `n` bytes at list offset `from` through edu (into edu's buffer, then out to `out`) and compares them. */
async function deviceReads(
  edu: EduDevice,
  iova: bigint,
  from: number,
  n: number,
  out: { buffer: DmaBuffer; iova: bigint },
  want: Uint8Array,
): Promise<void> {
  await edu.dmaToDevice(iova + BigInt(from), 0, n);
  await edu.dmaFromDevice(0, out.iova, n);
  assert.deepEqual(out.buffer.bytes.subarray(0, n), want.subarray(from, from + n), `${n} bytes at list offset ${from}`);
}

forEachBackend('DmaPool: map ioctls of a link, counted by strace', (backend) => {
  let traced: Traced;
  before(function () {
    this.timeout(600_000);
    traced = traceLinks(backend, BDF.edu);
  });

  const mapCall = backend === 'iommufd' ? 'IOMMU_IOAS_MAP' : 'VFIO_IOMMU_MAP_DMA';
  const expectCalls = (name: string, call: string, runs?: number): LinkedCase => {
    const c = traced.cases.find((x) => x.name === name);
    assert.ok(c, `the child linked ${name}`);
    if (runs !== undefined) assert.equal(c.runs, runs, `${name}: runs`);
    assert.deepEqual(traced.calls.get(name), { [call]: c.runs }, `${name}: one ${call} per run`);
    return c;
  };

  it('1,024 pool pieces in order: one map ioctl', () => {
    assert.equal(expectCalls('in-order', mapCall, 1).fragments, 1024);
  });

  it('1,016 pool pieces around 8 freed ones: one map ioctl per run, 8', () => {
    assert.equal(expectCalls('holes', mapCall, 8).fragments, 1016);
  });

  it('1,024 pool pieces in swapped pairs: nothing to coalesce, 1,024 map ioctls', () => {
    expectCalls('swapped', mapCall, 1024);
  });

  it('1,024 pieces of a hugetlb pool: one map ioctl', () => {
    expectCalls('hugetlb', mapCall, 1);
  });

  it(`memfd pieces mapped as a file coalesce by file offset (${backend === 'iommufd' ? 'IOMMU_IOAS_MAP_FILE' : 'type1 maps them by address'})`, () => {
    const call = backend === 'iommufd' ? 'IOMMU_IOAS_MAP_FILE' : mapCall;
    expectCalls('memfd-file', call, 1);
    expectCalls('memfd-file-sparse', call, 128);
  });

  it('64 separate buffers: one map ioctl per run of them adjacent in memory', () => {
    const c = expectCalls('separate-buffers', mapCall);
    assert.ok(c.runs > 1);
  });
});

forEachBackend('DmaPool with edu', (backend) => {
  const fx = eduFixture(backend);
  let space: AddressSpace;
  let edu: EduDevice;
  let out: { buffer: DmaBuffer; iova: bigint };
  before(() => {
    ({ space, edu } = fx);
    const buffer = DmaBuffer.allocate(PAGE);
    out = { buffer, iova: space.map(buffer, { limit: EDU_DMA_LIMIT }).iova };
  });

  it('a list of 1,016 pieces in 8 runs: the kernel holds one mapping per run; edu reads across run and piece boundaries', async () => {
    using pool = DmaPool.create(1024 * PAGE);
    const pieces = filledPieces(pool, 1024, 1000);
    for (let i = 0; i < 1024; i += 128) pieces[i].free();
    const kept = pieces.filter((p) => !p.freed);
    const list = PhysList.cpu(kept);
    using window = space.reserve(list.span, { limit: EDU_DMA_LIMIT });
    const type1 = space.backend instanceof Type1Backend ? space.backend : undefined;
    const avail = type1?.info().dmaAvail;
    const m = window.link(list);
    if (type1) assert.equal(avail! - type1.info().dmaAvail!, 8, "type1's free DMA entries dropped by the 8 runs");
    const run = 127 * PAGE;
    // An unmap that ends inside the first run is refused (it would cut a mapping): the run is ONE mapping.
    assert.throws(() => space.unmapRange(window.iova, run - PAGE), {
      name: 'VfioError',
      code: backend === 'iommufd' ? 'ENOENT' : 'EINVAL',
    });
    const want = concatenation(kept);
    // Run boundaries (where the freed pieces were) and boundaries between pieces inside a run.
    for (const boundary of [PAGE, 2 * PAGE, run, 2 * run, 3 * run + 50 * PAGE, 7 * run, 8 * run - PAGE]) {
      await deviceReads(edu, m.iova, boundary - 2000, DMA, out, want);
    }
    // A device write across the first run boundary lands in the last piece of run 0 and the first of run 1, not in the freed piece between.
    const data = pattern(4000, 77);
    out.buffer.bytes.set(data);
    await edu.dmaToDevice(out.iova, 0, 4000);
    await edu.dmaFromDevice(0, m.iova + BigInt(run - 1000), 4000);
    assert.deepEqual(kept[126].bytes.subarray(PAGE - 1000), data.subarray(0, 1000));
    assert.deepEqual(kept[127].bytes.subarray(0, 3000), data.subarray(1000));
    assert.deepEqual(new Uint8Array(pool.buffer.buffer, 128 * PAGE, PAGE), pattern(PAGE, 1128), 'the freed piece between is untouched');
    // The first run unmaps alone, exactly: it is one mapping of exactly its size.
    assert.equal(space.unmapRange(window.iova, run), BigInt(run));
    m.unmap();
    if (type1) assert.equal(type1.info().dmaAvail, avail);
  });

  it('a hugetlb pool mapped whole, once: every piece has an IOVA at once, at a 2 MiB aligned base; edu copies between pieces', async () => {
    using pool = DmaPool.create(2n * HUGE_PAGE_SIZE, { kind: 'hugetlb' });
    const m = pool.map(space, { limit: EDU_DMA_LIMIT });
    assert.equal(m.iova % HUGE_PAGE_SIZE, 0n);
    assert.equal(pool.mappingIn(space), m);
    assert.throws(() => pool.map(space), { name: 'VfioStateError', code: 'ERR_VFIO_BUSY' });
    const pieces = filledPieces(pool, 3, 50);
    const far = pool.allocate(HUGE_PAGE_SIZE); // runs into the second huge page
    assert.equal(pieces[2].dmaAddress(), m.dmaAddress + 2 * PAGE);
    assert.equal(pieces[2].iova(space), m.iova + 2n * BigInt(PAGE));
    await edu.dmaToDevice(pieces[1].iova(), 0, DMA);
    await edu.dmaFromDevice(0, BigInt(far.dmaAddress() + far.length - DMA), DMA);
    assert.deepEqual(far.bytes.subarray(far.length - DMA), pattern(PAGE, 51).subarray(0, DMA));
    m.unmap();
    assert.equal(pool.mappingIn(space), undefined);
    assert.throws(() => pieces[0].dmaAddress(), { code: 'ERR_VFIO_NOT_MAPPED' });
  });

  it('memfd pieces mapped as a file: one list, edu reads the concatenation and writes across pieces', async () => {
    using pool = DmaPool.create(64 * PAGE, { kind: 'memfd', asFile: true });
    const pieces = filledPieces(pool, 64, 300);
    const m = space.mapPhysList(PhysList.cpu(pieces), { limit: EDU_DMA_LIMIT });
    const want = concatenation(pieces);
    for (const boundary of [PAGE, 31 * PAGE, 63 * PAGE]) await deviceReads(edu, m.iova, boundary - 2000, DMA, out, want);
    const data = pattern(4000, 9);
    out.buffer.bytes.set(data);
    await edu.dmaToDevice(out.iova, 0, 4000);
    await edu.dmaFromDevice(0, m.iova + BigInt(10 * PAGE - 100), 4000);
    assert.deepEqual(pieces[9].bytes.subarray(PAGE - 100), data.subarray(0, 100));
    assert.deepEqual(pieces[10].bytes.subarray(0, 3900), data.subarray(100));
    m.unmap();
  });

  it("keeps the pool's memory while a mapping of it lives, after close(); frees it with the last unmap", async () => {
    const pool = DmaPool.create(4 * PAGE);
    const [piece] = filledPieces(pool, 1, 600);
    const address = pool.buffer.address;
    const m = pool.map(space, { limit: EDU_DMA_LIMIT });
    const pins = space.pinCount();
    pool.close();
    await collectGarbage();
    assert.ok(mapsContain(address), 'still mapped in the process');
    await edu.dmaToDevice(piece.iova(), 0, DMA); // the device still reaches the bytes written before close()
    out.buffer.bytes.fill(0);
    await edu.dmaFromDevice(0, out.iova, DMA);
    assert.deepEqual(out.buffer.bytes.subarray(0, DMA), pattern(PAGE, 600).subarray(0, DMA));
    m.unmap();
    assert.equal(space.pinCount(), pins - 1);
    await collectGarbage();
    assert.equal(mapsContain(address), false, 'freed with the last mapping');
  });
});

forEachBackend("DmaPool: type1's dma_entry_limit", (backend) => {
  let space: AddressSpace;
  let edu: EduDevice;
  const limit = 16;
  before(() => {
    assert.ok(fs.existsSync(DMA_ENTRY_LIMIT), `${DMA_ENTRY_LIMIT} exists (vfio_iommu_type1 is loaded)`);
    const was = fs.readFileSync(DMA_ENTRY_LIMIT, 'utf8').trim();
    // A container reads the limit when it gets its IOMMU: when the first device attaches.
    fs.writeFileSync(DMA_ENTRY_LIMIT, String(limit));
    try {
      space = AddressSpace.open({ backend });
      edu = EduDevice.open(space, BDF.edu);
    } finally {
      fs.writeFileSync(DMA_ENTRY_LIMIT, was);
    }
  });
  after(() => space?.close());

  if (backend === 'iommufd') {
    it('does not apply to iommufd: a list of 32 runs links with the limit at 16', () => {
      using pool = DmaPool.create(64 * PAGE);
      const pieces = filledPieces(pool, 64, 0);
      const m = space.mapPhysList(PhysList.cpu(pieces.filter((_, i) => i % 2 === 0)));
      m.unmap();
    });
    return;
  }

  it('hitting it is ENOSPC naming the limit and its module parameter, with nothing left half-mapped; coalesced lists still fit', async () => {
    const type1 = space.backend as Type1Backend;
    assert.equal(type1.info().dmaAvail, limit);
    using pool = DmaPool.create(64 * PAGE);
    const pieces = filledPieces(pool, 64, 400);
    const sparse = PhysList.cpu(pieces.filter((_, i) => i % 2 === 0)); // 32 runs
    using window = space.reserve(sparse.span, { limit: EDU_DMA_LIMIT });
    const pins = space.pinCount();
    assert.throws(
      () => window.link(sparse),
      (err: Error & { code?: string; errno?: number; syscall?: string }) => {
        assert.equal(err.name, 'VfioError');
        assert.equal(err.code, 'ENOSPC');
        assert.equal(err.errno, -28);
        assert.equal(err.syscall, 'ioctl(VFIO_IOMMU_MAP_DMA)');
        assert.match(err.message, /fragment 16 of 32; the fragments before it were unmapped again/);
        assert.match(err.message, /dma_entry_limit/);
        assert.match(err.message, /vfio_iommu_type1\.dma_entry_limit, 65535 by default/);
        assert.match(err.message, new RegExp(DMA_ENTRY_LIMIT));
        return true;
      },
    );
    assert.equal(type1.info().dmaAvail, limit, 'the 16 runs mapped before the failure were unmapped');
    assert.equal(space.pinCount(), pins, 'and nothing stays pinned');
    // The same 64 pieces in order are one run: one entry.
    const whole = PhysList.cpu(pieces);
    const m = space.mapPhysList(whole, { limit: EDU_DMA_LIMIT });
    assert.equal(type1.info().dmaAvail, limit - 1);
    const out = DmaBuffer.allocate(PAGE);
    const mo = space.map(out, { limit: EDU_DMA_LIMIT });
    await deviceReads(edu, m.iova, 40 * PAGE - 2000, DMA, { buffer: out, iova: mo.iova }, concatenation(pieces));
    // The sparse list's window takes 14 runs more: the container is full.
    const fill = window.link(PhysList.cpu(pieces.filter((_, i) => i % 2 === 0 && i < 28)));
    assert.equal(type1.info().dmaAvail, 0);
    using more = DmaBuffer.allocate(PAGE);
    assert.throws(() => space.map(more), { name: 'VfioError', code: 'ENOSPC', message: /dma_entry_limit/ });
    fill.unmap();
    m.unmap();
    mo.unmap();
    assert.equal(type1.info().dmaAvail, limit);
    out.close();
  });
});
