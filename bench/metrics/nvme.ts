/**
 * NVMe 4 KiB random reads at a fixed queue depth: the TypeScript driver
 * (lib/drivers/nvme, polled and MSI-X interrupt completions, through its
 * callback API: NvmeNamespace.readInto, no promise per I/O) against the
 * kernel's own nvme driver, bound to the controller for the C side's run,
 * read with O_DIRECT through io_uring at the same depth. Reported as time
 * per I/O and I/O per second.
 */
import * as fs from 'node:fs';
import { BackendKind, DmaBuffer, NvmeCompletionMode, NvmeController, PAGE_SIZE } from '../../lib';
import { AddonPrepared, BDF, BenchContext, Metric } from './types';

const QD = 32;
/** I/Os per sample: enough that one sample is not one batch's luck (about 0.1 s at 30000 IOPS). */
const IOS_PER_SAMPLE = 2560;
const IO_BYTES = 4096;

/** The namespace's block device once the kernel's nvme driver has it: /dev/nvme0n1. */
function blockDevice(): string | undefined {
  const name = fs.readdirSync('/sys/block').find((n) => /^nvme\d+n1$/.test(n));
  return name && fs.existsSync(`/dev/${name}`) ? `/dev/${name}` : undefined;
}

function nvmeMetric(backend: BackendKind, mode: NvmeCompletionMode): Metric {
  return {
    id: `nvme.randread4k.qd${QD}.${mode}`,
    label: `NVMe 4 KiB random read QD${QD}, ${mode} (C: kernel nvme driver, io_uring)`,
    backend,
    devices: [BDF.nvme],
    samples: 4,
    // Under TCG, V8 takes about half a second of the one vCPU to optimize each
    // function of the I/O path, and the optimized code is what is compared:
    // some 40000 reads first (seconds before it is optimized, one after).
    warmup: 15,
    per: IOS_PER_SAMPLE,
    perSecond: true,
    cSpec: { op: 'blockread', qd: QD, count: IOS_PER_SAMPLE },
    kernelDriver: {
      bdf: BDF.nvme,
      driver: 'nvme',
      spec: () => {
        const path = blockDevice();
        if (!path) throw new Error("the kernel's nvme driver made no block device");
        return { path };
      },
    },
    async addon({ space, closeDevice }: BenchContext): Promise<AddonPrepared> {
      closeDevice(BDF.nvme); // the driver opens the device itself
      const nvme = await NvmeController.open(space, BDF.nvme, { mode });
      const ns = nvme.namespace(1);
      const blocks = IO_BYTES / ns.blockSize;
      const slots = Number(ns.bytes / BigInt(IO_BYTES));
      const buffer = DmaBuffer.allocate(BigInt(QD) * PAGE_SIZE);
      const mapping = space.map(buffer);
      // xorshift, as the C side draws its offsets (no floating point)
      let x = 0x9e3779b9;
      const randomLba = (): number => {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        return ((x & 0x7fffffff) % slots) * blocks;
      };
      // The lean path: readInto with a lane number as its tag, one callback
      // for every command, the next read submitted from the completion's
      // callback (no promise, closure or object per I/O).
      let left = 0;
      let done = 0;
      let t0 = 0n;
      let finish: (ns: number) => void = () => undefined;
      let fail: (err: Error) => void = () => undefined;
      const completed = (err: Error | undefined, lane: number): void => {
        if (err) {
          left = 0;
          fail(err);
          return;
        }
        if (left > 0) {
          left--;
          ns.readInto(randomLba(), blocks, mapping, lane * IO_BYTES, completed, lane);
        }
        if (++done === IOS_PER_SAMPLE) finish(Number(process.hrtime.bigint() - t0));
      };
      return {
        run: () =>
          new Promise<number>((resolve, reject) => {
            finish = resolve;
            fail = reject;
            left = IOS_PER_SAMPLE;
            done = 0;
            t0 = process.hrtime.bigint();
            for (let lane = 0; lane < QD && left > 0; lane++) {
              left--;
              ns.readInto(randomLba(), blocks, mapping, lane * IO_BYTES, completed, lane);
            }
          }),
        close: async () => {
          mapping.unmap();
          buffer.close();
          await nvme.close();
        },
        cSpec: { span: Number(ns.bytes) },
      };
    },
  };
}

export function nvmeMetrics(backend: BackendKind): Metric[] {
  return [nvmeMetric(backend, 'interrupt'), nvmeMetric(backend, 'polled')];
}
