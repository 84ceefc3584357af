/**
 * The objects a fuzz starts from (each call's results join them): in the
 * guest, an address space of one backend with edu, ivshmem and nvme open
 * in it (an NVMe controller over nvme), DMA buffers of every kind mapped
 * and not, an IOVA window, phys_lists of the three kinds, a DMA pool, a P2P
 * provider over ivshmem's BAR2, interrupt vectors, and one instance of every
 * other exported class; on the host (no VFIO), what the library's pure
 * TypeScript offers: buffers, lists, pools, allocators, errors, an
 * NvmeRegisters over a memfd region, command builders.
 */
import { EventEmitter } from 'node:events';
import * as lib from '../../lib/index';

/** One step of building a world: a name and what it makes. */
type Step = [string, () => unknown];

/** Runs the steps; what fails is reported to `failed` (and the rest goes on). */
async function build(steps: Step[], failed: (what: string, err: unknown) => void): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const [what, make] of steps) {
    try {
      out.push(await make());
    } catch (err) {
      failed(what, err);
    }
  }
  return out;
}

/** Objects of the library's own that need no device. */
function pureSteps(): Step[] {
  const buf = (): lib.DmaBuffer => lib.DmaBuffer.allocate(8192);
  return [
    [
      'errors',
      () => [
        new lib.VfioError('EINVAL: fuzz', { code: 'EINVAL', errno: -22, syscall: 'ioctl(IOMMU_IOAS_MAP)' }),
        new lib.VfioStateError('fuzz', 'ERR_VFIO_CLOSED'),
        new lib.IovaAllocatorError('EEXIST', 'fuzz'),
        new lib.NvmeError('fuzz', 'ETIMEDOUT', { command: 'Read', opcode: 2, queue: 1, cid: 3 }),
        new lib.NvmeStatusError(0x4002, 0, { command: 'Read', opcode: 2, queue: 1 }),
      ],
    ],
    ['allocator', () => new lib.IovaAllocator([{ start: 0x1000n, last: (1n << 32n) - 1n }])],
    ['buffers', () => [buf(), lib.DmaBuffer.allocate(4096, { kind: 'memfd' }), lib.DmaBuffer.allocate(65536)]],
    ['cpu list', () => lib.PhysList.cpu([{ buffer: buf() }, { buffer: buf(), offset: 0, length: 100 }])],
    ['encrypted list', () => lib.PhysList.encrypted([{ offset: 0, length: 4096 }])],
    [
      'pool',
      () => {
        const pool = lib.DmaPool.create(65536);
        return [pool, pool.allocate(512)];
      },
    ],
    ['completions', () => [new lib.PolledCompletions(1), new lib.InterruptCompletions(1, new EventEmitter())]],
    ['commands', () => [lib.nvmeCommands.flush(1), lib.nvmeCommands.identify(1, [])]],
  ];
}

/** The host's world: what needs no VFIO, and NvmeRegisters over a memfd region. */
export async function hostWorld(failed: (what: string, err: unknown) => void): Promise<unknown[]> {
  const { memfdRegion } = await import('./memfd-region');
  return build(
    [
      ...pureSteps(),
      [
        'memfd region',
        () => {
          const { region } = memfdRegion({ size: 16384 });
          return [region, new lib.NvmeRegisters(region)];
        },
      ],
    ],
    failed,
  );
}

/** The guest's devices. */
export const DEVICES = { edu: '0000:00:03.0', ivshmem: '0000:00:04.0', nvme: '0000:00:05.0' } as const;

/** The guest's world over `backend`, devices open. */
export async function guestWorld(backend: 'iommufd' | 'type1', failed: (what: string, err: unknown) => void): Promise<unknown[]> {
  const space = lib.AddressSpace.open({ backend });
  const low = { limit: 1n << 28n };
  let ivshmem: lib.VfioPciDevice | undefined;
  const steps: Step[] = [
    ['space', () => space],
    [
      'edu',
      () => {
        const edu = lib.EduDevice.open(space, DEVICES.edu);
        const vectors = edu.device.interrupts.enableMsi(1);
        return [edu, edu.device, edu.device.interrupts, vectors, new lib.InterruptCompletions(0, vectors[0])];
      },
    ],
    [
      'ivshmem',
      () => {
        ivshmem = space.openDevice(DEVICES.ivshmem);
        return [ivshmem, ivshmem.bar(0), ivshmem.bar(2), ivshmem.config, ivshmem.interrupts, ivshmem.interrupts.enableMsix(1)];
      },
    ],
    [
      'nvme',
      async () => {
        const nvme = await lib.NvmeController.open(space, DEVICES.nvme, { timeoutMs: 2000 });
        return [nvme, nvme.namespace(1), nvme.registers, nvme.adminQueue, nvme.queues];
      },
    ],
    [
      'mappings',
      () => {
        const a = lib.DmaBuffer.allocate(16384);
        const b = lib.DmaBuffer.allocate(8192, { kind: 'memfd' });
        const mapping = space.map(a, low);
        return [
          mapping,
          space.map(b, { ...low, access: { write: false } }),
          space.reserve(65536, low),
          new lib.NvmeRevokedError({ command: 'Read', opcode: 2, queue: 1, cid: 0 }, mapping),
        ];
      },
    ],
    [
      'cpu list mapped',
      () => {
        const list = lib.PhysList.cpu([{ buffer: lib.DmaBuffer.allocate(4096) }, { buffer: lib.DmaBuffer.allocate(8192), length: 100 }]);
        return [list, space.mapPhysList(list, low)];
      },
    ],
    [
      'p2p',
      () => {
        const provider = new lib.P2PProvider(ivshmem!, 2);
        const list = lib.PhysList.p2p(provider, [{ offset: 0, length: 4096 }]);
        return [provider, list, space.mapPhysList(list, low)];
      },
    ],
    [
      'pool mapped',
      () => {
        const pool = lib.DmaPool.create(65536);
        return [pool, pool.allocate(4096), pool.map(space, low)];
      },
    ],
    ['iommufd context', () => (backend === 'iommufd' ? new lib.IommufdContext() : undefined)],
    ...pureSteps(),
  ];
  return build(steps, failed);
}
