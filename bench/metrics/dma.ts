/**
 * DMA mapping metrics on both backends, with edu attached (iommufd pins
 * only once a device is attached, so the cost includes pinning):
 *  - map + unmap of one buffer: AddressSpace.map + DmaMapping.unmap;
 *  - a phys_list of N 4 KiB fragments from N buffers: IovaWindow.link (one
 *    native call) + DmaMapping.unmap, against the C loop of single maps and
 *    a JavaScript loop of AddressSpace.map at the same IOVAs + one
 *    unmapRange. All three make the same N + 1 system calls.
 */
import { AddressSpace, BackendKind, DmaBuffer, HUGE_PAGE_SIZE, PAGE_SIZE, PhysList } from '../../lib';
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
        close: () => { window.release(); f.close(); },
        cSpec: { iova: `0x${window.iova.toString(16)}` },
      };
    },
    jsLoop({ space }: BenchContext): Prepared {
      const f = fragments(space, n);
      // The same consecutive IOVAs a window would give, left free for AddressSpace.map({ iova }).
      const window = space.reserve(span);
      const base = window.iova;
      window.release();
      return {
        run: () => {
          for (let i = 0; i < n; i++) space.map(f.buffers[i], { iova: base + BigInt(i) * PAGE_SIZE });
          space.unmapRange(base, span);
        },
        close: () => f.close(),
      };
    },
  };
}

export function dmaMetrics(backend: BackendKind): Metric[] {
  return [
    ...MAP_CASES.map((c) => mapMetric(backend, c)),
    nativeFloorMetric(backend),
    ...PHYS_LIST_SIZES.map(({ n, samples }) => physListMetric(backend, n, samples)),
  ];
}
