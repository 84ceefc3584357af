/**
 * DMA mapping metrics on both backends, with edu attached (iommufd pins
 * only once a device is attached, so the cost includes pinning):
 *  - map + unmap of one buffer: AddressSpace.map + DmaMapping.unmap;
 *  - a phys_list of N 4 KiB fragments from N buffers: IovaWindow.link (one
 *    native call) + DmaMapping.unmap, against the C loop of single maps and
 *    a JavaScript loop of AddressSpace.map at the same IOVAs + one
 *    unmapRange. All three make the same N + 1 system calls;
 *  - a phys_list of 1,024 pieces of one DmaPool, allocated in order: linked
 *    as ONE run (one map ioctl) + unmap, against C mapping the same 4 MiB
 *    with one ioctl, and against 1,024 single AddressSpace.map calls of the
 *    same pieces + one unmapRange (which the link must beat 10 times).
 */
import { AddressSpace, BackendKind, DmaBuffer, DmaPool, HUGE_PAGE_SIZE, PAGE_SIZE, PhysList } from '../../lib';
import { AddonPrepared, BDF, BenchContext, Metric, Prepared } from './types';

interface MapCase {
  name: string;
  size: bigint;
  kind: 'anonymous' | 'hugetlb';
  samples: number;
}

const MAP_CASES: MapCase[] = [
  { name: '4 KiB', size: 4096n, kind: 'anonymous', samples: 40 },
  { name: '2 MiB hugetlb', size: HUGE_PAGE_SIZE, kind: 'hugetlb', samples: 30 },
  { name: '64 MiB', size: 64n << 20n, kind: 'anonymous', samples: 5 },
];

const PHYS_LIST_SIZES: { n: number; samples: number }[] = [
  { n: 1, samples: 40 },
  { n: 64, samples: 12 },
  { n: 1024, samples: 3 },
];

function mapMetric(backend: BackendKind, c: MapCase): Metric {
  // Huge pages map best at a huge-page-aligned IOVA; the C side uses the same IOVA.
  const align = c.kind === 'hugetlb' ? HUGE_PAGE_SIZE : PAGE_SIZE;
  return {
    id: `map.${backend}.${c.name.split(' ').slice(0, 2).join('')}`,
    label: `map + unmap ${c.name}`,
    backend,
    devices: [BDF.edu],
    target: { maxRatio: 1.1 },
    samples: c.samples,
    warmup: 2,
    per: 1,
    cSpec: { op: 'map', size: Number(c.size), kind: c.kind === 'hugetlb' ? 'hugetlb' : 'anon' },
    addon({ space }: BenchContext): AddonPrepared {
      const buffer = DmaBuffer.allocate(c.size, { kind: c.kind });
      const probe = space.map(buffer, { align });
      const iova = probe.iova;
      probe.unmap();
      return {
        run: () => space.map(buffer, { align }).unmap(),
        close: () => buffer.close(),
        cSpec: { iova: `0x${iova.toString(16)}` },
      };
    },
  };
}

/**
 * A diagnostic without a target: the 4 KiB map + unmap through the backend
 * alone (the two native calls, none of AddressSpace's bookkeeping), to tell
 * the cost of crossing into the addon from the cost of the TypeScript above it.
 */
function nativeFloorMetric(backend: BackendKind): Metric {
  return {
    id: `map.${backend}.4KiB.native`,
    label: 'map + unmap 4 KiB: the native calls alone (backend.map + unmap)',
    backend,
    devices: [BDF.edu],
    samples: MAP_CASES[0].samples,
    warmup: 2,
    per: 1,
    cSpec: { op: 'map', size: 4096, kind: 'anon' },
    addon({ space }: BenchContext): AddonPrepared {
      const buffer = DmaBuffer.allocate(PAGE_SIZE);
      const window = space.reserve(PAGE_SIZE);
      const { iova } = window;
      window.release();
      const access = { read: true, write: true };
      return {
        run: () => {
          space.backend.map(buffer.native, 0n, PAGE_SIZE, iova, access, false);
          space.backend.unmap(iova, PAGE_SIZE);
        },
        close: () => buffer.close(),
        cSpec: { iova: `0x${iova.toString(16)}` },
      };
    },
  };
}

/** N one-page buffers, one fragment each, and the IOVA window they go to. */
function fragments(space: AddressSpace, n: number): { buffers: DmaBuffer[]; list: PhysList; close(): void } {
  const buffers = Array.from({ length: n }, () => DmaBuffer.allocate(PAGE_SIZE));
  return {
    buffers,
    list: PhysList.cpu(buffers.map((buffer) => ({ buffer }))),
    close: () => buffers.forEach((b) => b.close()),
  };
}

function physListMetric(backend: BackendKind, n: number, samples: number): Metric {
  const span = BigInt(n) * PAGE_SIZE;
  return {
    id: `physlist.${backend}.${n}`,
    label: `phys_list ${n} × 4 KiB`,
    backend,
    devices: [BDF.edu],
    target: n === 1024 ? { maxRatio: 1.2, minSpeedupOverJsLoop: 5 } : { maxRatio: 1.2 },
    samples,
    warmup: n >= 1024 ? 1 : 2,
    per: 1,
    cSpec: { op: 'physlist', n },
    addon({ space }: BenchContext): AddonPrepared {
      const f = fragments(space, n);
      const window = space.reserve(span);
      return {
        run: () => window.link(f.list).unmap(),
        close: () => {
          window.release();
          f.close();
        },
        cSpec: { iova: `0x${window.iova.toString(16)}` },
      };
    },
    jsLoop({ space }: BenchContext): Prepared {
      const f = fragments(space, n);
      return singleMaps(space, n, (i, iova) => space.map(f.buffers[i], { iova }), f.close);
    },
  };
}

/**
 * The JavaScript loop: `n` single AddressSpace.map calls (`map(i, iova)`) at
 * the consecutive IOVAs a window would give, left free for
 * AddressSpace.map({ iova }), then one unmapRange over them.
 */
function singleMaps(space: AddressSpace, n: number, map: (i: number, iova: bigint) => void, close: () => void): Prepared {
  const span = BigInt(n) * PAGE_SIZE;
  const window = space.reserve(span);
  const base = window.iova;
  window.release();
  return {
    run: () => {
      for (let i = 0; i < n; i++) map(i, base + BigInt(i) * PAGE_SIZE);
      space.unmapRange(base, span);
    },
    close,
  };
}

/** Pieces of the pool list metric. */
const POOL_PIECES = 1024;

/** A pool of POOL_PIECES pages, each page a piece, allocated in order: contiguous. */
function poolPieces(): { pool: DmaPool; list: PhysList } {
  const pool = DmaPool.create(BigInt(POOL_PIECES) * PAGE_SIZE);
  return { pool, list: PhysList.cpu(Array.from({ length: POOL_PIECES }, () => pool.allocate(PAGE_SIZE))) };
}

function poolListMetric(backend: BackendKind): Metric {
  const span = BigInt(POOL_PIECES) * PAGE_SIZE;
  return {
    id: `pool.${backend}.${POOL_PIECES}`,
    label: `phys_list ${POOL_PIECES} × 4 KiB DmaPool pieces (one run; JS loop: ${POOL_PIECES} single maps)`,
    backend,
    devices: [BDF.edu],
    target: { maxRatio: 1.2, minSpeedupOverJsLoop: 10 },
    figure: 'kernel',
    samples: 12,
    warmup: 1,
    per: 1,
    // The same 4 MiB of anonymous memory, mapped with one ioctl as the coalesced link maps it.
    cSpec: { op: 'map', size: Number(span), kind: 'anon' },
    addon({ space }: BenchContext): AddonPrepared {
      const { pool, list } = poolPieces();
      const window = space.reserve(span);
      return {
        run: () => window.link(list).unmap(),
        close: () => {
          window.release();
          pool.close();
        },
        cSpec: { iova: `0x${window.iova.toString(16)}` },
      };
    },
    jsLoop({ space }: BenchContext): Prepared {
      const { pool } = poolPieces();
      const page = Number(PAGE_SIZE);
      return singleMaps(
        space,
        POOL_PIECES,
        (i, iova) => space.map(pool.buffer, { offset: i * page, length: page, iova }),
        () => pool.close(),
      );
    },
  };
}

export function dmaMetrics(backend: BackendKind): Metric[] {
  return [
    ...MAP_CASES.map((c) => mapMetric(backend, c)),
    nativeFloorMetric(backend),
    ...PHYS_LIST_SIZES.map(({ n, samples }) => physListMetric(backend, n, samples)),
    poolListMetric(backend),
  ];
}
