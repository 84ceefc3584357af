/**
 * 32-bit BAR accesses: ivshmem BAR2 (memory: the cost of the access path)
 * through Region.read32/write32 and through a DataView and a Uint32Array
 * over the zero-copy ArrayBuffer; nvme BAR0 (registers QEMU emulates: each access traps)
 * through Region.read32 of VS and Region.write32 of AQA with its own value,
 * which changes nothing while the controller is disabled. The C side mmaps
 * the same BAR (or uses pread/pwrite when the Region does) and loops over
 * volatile loads and stores.
 */
import { BackendKind, Region } from '../../lib';
import { AddonPrepared, BDF, BenchContext, Metric } from './types';

/** Where the benchmark touches ivshmem's 1 MiB: away from the first 64 KiB the tests' pattern lives in. */
const IVSHMEM_OFFSET = 0x80000;
const NVME_VS = 0x08;
const NVME_CC = 0x14;
const NVME_AQA = 0x24;
const NVME_CC_EN = 1;

let sink = 0;

type Access = 'read' | 'write';
type Path = 'Region' | 'DataView' | 'Uint32Array';

interface MmioCase {
  device: 'ivshmem' | 'nvme';
  bar: number;
  offset: number;
  register: string;
  access: Access;
  path: Path;
  batch: number;
  /** The value written; without one, what the register holds (read first, on both sides). */
  value?: number;
  /** Refuses to run when writing would not be harmless. */
  guard?: (bar: Region) => void;
}

/** The access loop; reads fold into a local, as the C loop's register, and reach `sink` once per sample. */
function loop(region: Region, c: MmioCase, value: number): () => void {
  const { offset, batch } = c;
  if (c.path === 'Uint32Array') {
    const words = new Uint32Array(region.buffer);
    const at = offset / 4;
    return c.access === 'read'
      ? () => {
          let x = 0;
          for (let i = 0; i < batch; i++) x ^= words[at];
          sink ^= x;
        }
      : () => {
          for (let i = 0; i < batch; i++) words[at] = value;
        };
  }
  if (c.path === 'DataView') {
    const view = new DataView(region.buffer);
    return c.access === 'read'
      ? () => {
          let x = 0;
          for (let i = 0; i < batch; i++) x ^= view.getUint32(offset, true);
          sink ^= x;
        }
      : () => {
          for (let i = 0; i < batch; i++) view.setUint32(offset, value, true);
        };
  }
  return c.access === 'read'
    ? () => {
        let x = 0;
        for (let i = 0; i < batch; i++) x ^= region.read32(offset);
        sink ^= x;
      }
    : () => {
        for (let i = 0; i < batch; i++) region.write32(offset, value);
      };
}

function mmioMetric(backend: BackendKind, c: MmioCase): Metric {
  const bdf = BDF[c.device];
  return {
    id: `mmio.${c.device}.${c.access}32.${c.path}`,
    label: `MMIO ${c.access} ${c.device} ${c.register} (${c.path === 'Region' ? `Region.${c.access}32` : c.path})`,
    backend,
    devices: [bdf],
    target: { maxRatio: 2 },
    samples: 15,
    warmup: 2,
    per: c.batch,
    cSpec: { op: 'mmio', bdf, bar: c.bar, offset: c.offset, access: c.access, batch: c.batch },
    addon({ device }: BenchContext): AddonPrepared {
      const region = device(bdf).bar(c.bar);
      c.guard?.(region);
      const value = c.value ?? region.read32(c.offset);
      return {
        run: loop(region, c, value),
        close: () => {},
        cSpec: { value: c.value ?? 'read', via: region.mapped ? 'mmap' : 'pread' },
      };
    },
  };
}

function nvmeDisabled(bar0: Region): void {
  if (bar0.read32(NVME_CC) & NVME_CC_EN) throw new Error('the nvme controller is enabled (CC.EN = 1): writing AQA would not be harmless');
}

export function mmioMetrics(backend: BackendKind): Metric[] {
  const ivshmem = { device: 'ivshmem', bar: 2, offset: IVSHMEM_OFFSET, register: 'BAR2', batch: 20000, value: 0x5a5aa5a5 } as const;
  const nvme = { device: 'nvme', bar: 0, batch: 400 } as const;
  const cases: MmioCase[] = [
    { ...ivshmem, access: 'read', path: 'Region' },
    { ...ivshmem, access: 'write', path: 'Region' },
    { ...ivshmem, access: 'read', path: 'DataView' },
    { ...ivshmem, access: 'write', path: 'DataView' },
    { ...ivshmem, access: 'read', path: 'Uint32Array' },
    { ...ivshmem, access: 'write', path: 'Uint32Array' },
    { ...nvme, offset: NVME_VS, register: 'VS', access: 'read', path: 'Region' },
    { ...nvme, offset: NVME_AQA, register: 'AQA', access: 'write', path: 'Region', guard: nvmeDisabled },
  ];
  return cases.map((c) => mmioMetric(backend, c));
}

/** Keeps the loads' results observable. */
export function mmioSink(): number {
  return sink;
}
