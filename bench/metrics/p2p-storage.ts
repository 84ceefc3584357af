/**
 * Peer-to-peer storage: NVMe reads of 4 KiB, 128 KiB and 1 MiB straight
 * into a peer device's BAR (ivshmem's BAR2, through a P2P phys_list)
 * against the bounce path, NVMe reads into CPU memory followed by a CPU copy
 * of the bytes into the BAR (through its mmap). Both sides go through the
 * library's NVMe driver (NvmeNamespace.readInto), with the same LBAs, the
 * same lanes in flight and the same transfer per command, in the same guest
 * run; there is no C side. Reported as time and throughput per operation
 * (one operation moves `size` bytes from the disk into the BAR) and the
 * bounce path's time over the direct path's.
 */
import { BackendKind, DmaBuffer, DmaMapping, NvmeController, NvmeNamespace, P2PProvider, PhysList } from '../../lib';
import { AddonPrepared, BDF, BenchContext, Metric, Prepared } from './types';

const KiB = 1024;
/** ivshmem's BAR2: every lane has a slot of it. */
const BAR_BYTES = 1 << 20;
const SIZES = [4 * KiB, 128 * KiB, 1024 * KiB];
/** Bytes moved per sample, whatever the size (about as long a sample for each). */
const BYTES_PER_SAMPLE = 4 << 20;

const sizeName = (size: number): string => (size >= 1 << 20 ? `${size >> 20} MiB` : `${size / KiB} KiB`);

/** The lanes in flight for a size: 32, or as many slots of that size as the BAR has. */
const lanesFor = (size: number): number => Math.min(32, BAR_BYTES / size);

interface Rig {
  nvme: NvmeController;
  ns: NvmeNamespace;
  provider: P2PProvider;
  /** The BAR as the CPU sees it. */
  bar: Uint8Array;
  /** The whole BAR, as one P2P mapping. */
  p2p: DmaMapping;
}

async function openRig({ space, device, closeDevice }: BenchContext): Promise<Rig> {
  closeDevice(BDF.nvme); // the driver opens the device itself
  const nvme = await NvmeController.open(space, BDF.nvme, { mode: 'polled' });
  const peer = device(BDF.ivshmem);
  const provider = new P2PProvider(peer, 2);
  const p2p = space.mapPhysList(PhysList.p2p(provider, [{ offset: 0, length: BAR_BYTES }]));
  return { nvme, ns: nvme.namespace(1), provider, bar: new Uint8Array(peer.bar(2).buffer), p2p };
}

async function closeRig(r: Rig): Promise<void> {
  r.p2p.unmap();
  r.provider.close();
  await r.nvme.close();
}

/**
 * Runs `ops` operations of `size` bytes over `lanes` lanes: each reads
 * `size` bytes from a random LBA into `target` at its lane's slot (in
 * commands of at most the namespace's largest transfer, all in flight at
 * once), then calls `after(lane)` (the bounce path's copy), then goes on.
 * Resolves to the nanoseconds it took.
 */
function readOps(ns: NvmeNamespace, target: DmaMapping, size: number, ops: number, after?: (lane: number) => void): Promise<number> {
  const lanes = lanesFor(size);
  const blocks = size / ns.blockSize;
  const perCommand = Math.min(blocks, ns.maxTransferBlocks);
  const commands = Math.ceil(blocks / perCommand);
  const slots = Number(ns.bytes / BigInt(size));
  const pending = new Array<number>(lanes).fill(0);
  let x = 0x9e3779b9;
  let started = 0;
  let done = 0;
  return new Promise<number>((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const start = (lane: number): void => {
      started++;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const lba = ((x & 0x7fffffff) % slots) * blocks;
      pending[lane] = commands;
      for (let c = 0; c < commands; c++) {
        ns.readInto(
          lba + c * perCommand,
          Math.min(perCommand, blocks - c * perCommand),
          target,
          lane * size + c * perCommand * ns.blockSize,
          end,
          lane,
        );
      }
    };
    const end = (err: Error | undefined, lane: number): void => {
      if (err) {
        done = ops;
        reject(err);
        return;
      }
      if (--pending[lane] > 0) return;
      if (after) after(lane);
      if (++done === ops) resolve(Number(process.hrtime.bigint() - t0));
      else if (started < ops) start(lane);
    };
    for (let lane = 0; lane < lanes && started < ops; lane++) start(lane);
  });
}

function p2pMetric(backend: BackendKind, size: number): Metric {
  const ops = BYTES_PER_SAMPLE / size;
  return {
    id: `p2p.nvme-to-bar.${backend}.${size / KiB}KiB`,
    label: `NVMe read ${sizeName(size)} into a peer BAR: directly (P2P) vs into CPU memory + CPU copy into the BAR, ${lanesFor(size)} at a time`,
    backend,
    devices: [BDF.nvme, BDF.ivshmem],
    samples: 5,
    warmup: 2,
    per: ops,
    bytesPerOp: size,
    cSpec: {},
    figure: 'pair',
    async addon(ctx: BenchContext): Promise<AddonPrepared> {
      const r = await openRig(ctx);
      return { run: () => readOps(r.ns, r.p2p, size, ops), close: () => closeRig(r), cSpec: {} };
    },
    versus: {
      label: 'into CPU memory + CPU copy into the BAR',
      async prepare(ctx: BenchContext): Promise<Prepared> {
        const r = await openRig(ctx);
        const buffer = DmaBuffer.allocate(BAR_BYTES);
        const mapping = ctx.space.map(buffer);
        const cpu = buffer.bytes;
        const copy = (lane: number): void => r.bar.set(cpu.subarray(lane * size, (lane + 1) * size), lane * size);
        return {
          run: () => readOps(r.ns, mapping, size, ops, copy),
          close: async () => {
            mapping.unmap();
            buffer.close();
            await closeRig(r);
          },
        };
      },
    },
  };
}

/** The P2P storage rows of a backend: one per size. */
export function p2pStorageMetrics(backend: BackendKind): Metric[] {
  return SIZES.map((size) => p2pMetric(backend, size));
}
