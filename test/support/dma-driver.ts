/**
 * A small driver interface for DMA tests, as the kernel's VFIO selftests
 * have one (tools/testing/selftests/vfio/lib: a driver's memcpy_start,
 * memcpy_wait and send_msi): start a copy between two IOVAs through the
 * device, wait for it, and make the device send an interrupt. A test
 * written against it runs on every device that implements it:
 *
 *  - edu: the copy goes through the device's 4 KiB buffer (a DMA read of
 *    the source into it, then a DMA write from it to the destination); its
 *    interrupt is its test register's, over MSI;
 *  - nvme: the copy goes through a scratch range of the namespace (a Write
 *    from the source, then a Read to the destination, each a command whose
 *    data pointer is the IOVA); its interrupt is an admin command's
 *    completion, over MSI-X vector 0.
 *
 * A device that cannot carry a copy out (its DMA was blocked) may say so:
 * NVMe fails the command with a Data Transfer Error; edu moves zeros.
 */
import { AddressSpace, AddressSpaceOptions, MapOptions } from '../../lib/address-space';
import { EduDevice, EDU_BUFFER_SIZE, EDU_DMA_LIMIT } from '../../lib/drivers/edu';
import { NvmeController, NvmeNamespace } from '../../lib/drivers/nvme';
import { AdminOpcode, FeatureId } from '../../lib/drivers/nvme/commands';
import { IrqVector } from '../../lib/interrupts';
import { NVME_IMAGE_SIZE } from '../../vm/devices';
import { BDF } from './guest';
import { NVME_BLOCK } from './witness';

/** What a DMA test asks of a device. */
export interface DmaTestDriver extends AsyncDisposable {
  /** The driver's name, for test titles. */
  readonly name: 'edu' | 'nvme';
  /** The device's PCI address (the IOMMU's fault log names it). */
  readonly bdf: string;
  /** The address space the device is open in. */
  readonly space: AddressSpace;
  /** The longest copy one call moves, in bytes. */
  readonly maxCopy: number;
  /** What a copy's length must be a multiple of (edu: 1; NVMe: its block). */
  readonly copyUnit: number;
  /** How to map memory the device reaches (edu's DMA engine reaches 28 bits of IOVA). */
  readonly mapOptions: MapOptions;
  /** Starts copying `length` bytes from IOVA `src` to IOVA `dst` through the device (memcpy_start). */
  memcpyStart(src: bigint, dst: bigint, length: number): void;
  /** Waits for the copy started last (memcpy_wait): rejects with the device's error when it reported one. */
  memcpyWait(): Promise<void>;
  /** Makes the device send an interrupt, and resolves with its vector's count when it came (send_msi). */
  sendInterrupt(): Promise<number>;
  /** Closes the device (and for NVMe shuts the controller down). */
  close(): Promise<void>;
}

/** How long a test waits for one copy or interrupt under TCG. */
const WAIT_MS = 10_000;

/** A copy under way: its promise, and one handler so that a failure waits for memcpyWait without being unhandled. */
class Pending {
  private promise: Promise<void> = Promise.resolve();

  /** Starts `run`; its failure is kept for wait(). */
  start(run: () => Promise<void>): void {
    const p = run();
    p.catch(() => undefined);
    this.promise = p;
  }

  /** The copy started last. */
  wait(): Promise<void> {
    return this.promise;
  }
}

/** edu: copies through its buffer; its interrupt over MSI. */
class EduDmaDriver implements DmaTestDriver {
  readonly name = 'edu';
  readonly bdf = BDF.edu;
  readonly maxCopy = EDU_BUFFER_SIZE - 1; // a transfer to edu's last byte aborts QEMU 7.2 (EduDevice refuses it)
  readonly copyUnit = 1;
  readonly mapOptions: MapOptions = { limit: EDU_DMA_LIMIT };
  private readonly pending = new Pending();
  private readonly vector: IrqVector;

  constructor(
    readonly space: AddressSpace,
    private readonly edu: EduDevice,
  ) {
    [this.vector] = edu.device.interrupts.enableMsi();
  }

  memcpyStart(src: bigint, dst: bigint, length: number): void {
    this.pending.start(async () => {
      await this.edu.dmaToDevice(src, 0, length, { timeoutMs: WAIT_MS });
      await this.edu.dmaFromDevice(0, dst, length, { timeoutMs: WAIT_MS });
    });
  }

  memcpyWait(): Promise<void> {
    return this.pending.wait();
  }

  async sendInterrupt(): Promise<number> {
    const seen = this.vector.wait({ timeoutMs: WAIT_MS });
    this.edu.raiseInterrupt(0x1);
    const n = await seen;
    this.edu.acknowledgePending(this.vector);
    return n;
  }

  async close(): Promise<void> {
    this.edu.close();
    await Promise.resolve();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * The scratch range of the NVMe image these tests write: 64 KiB at 3 MiB
 * from its end, clear of the ranges other guest tests write (the last
 * 1 MiB, the P2P tests' 1 MiB below it), inside the last 4 MiB that no test
 * reads as the host's pattern (witness.ts's NVME_PATTERN_BLOCKS).
 */
const NVME_SCRATCH_4K = NVME_IMAGE_SIZE / NVME_BLOCK - 768;

/** nvme: copies through a scratch range of namespace 1 (a Write, then a Read); its interrupt is an admin completion on MSI-X vector 0. */
class NvmeDmaDriver implements DmaTestDriver {
  readonly name = 'nvme';
  readonly bdf = BDF.nvme;
  readonly maxCopy = 64 * 1024;
  readonly copyUnit: number;
  readonly mapOptions: MapOptions = {};
  private readonly pending = new Pending();
  private readonly ns: NvmeNamespace;
  private readonly lba: number;

  constructor(
    readonly space: AddressSpace,
    private readonly nvme: NvmeController,
  ) {
    this.ns = nvme.namespace(1);
    this.copyUnit = this.ns.blockSize;
    this.lba = (NVME_SCRATCH_4K * NVME_BLOCK) / this.ns.blockSize;
  }

  memcpyStart(src: bigint, dst: bigint, length: number): void {
    if (length % this.copyUnit !== 0 || length > this.maxCopy)
      throw new RangeError(`an NVMe copy is a multiple of ${this.copyUnit} bytes up to ${this.maxCopy}, not ${length}`);
    const blocks = length / this.copyUnit;
    this.pending.start(async () => {
      await this.ns.write(this.lba, blocks, [{ iova: src, length }], { timeoutMs: WAIT_MS });
      await this.ns.read(this.lba, blocks, [{ iova: dst, length }], { timeoutMs: WAIT_MS });
    });
  }

  memcpyWait(): Promise<void> {
    return this.pending.wait();
  }

  async sendInterrupt(): Promise<number> {
    const vector = this.nvme.interruptVectors[0]; // the admin queue's
    const seen = vector.wait({ timeoutMs: WAIT_MS });
    // Get Features, Number of Queues: harmless, and its completion interrupts on the admin queue's vector
    await this.nvme.adminCommand({ name: 'Get Features', opcode: AdminOpcode.GET_FEATURES, cdw10: FeatureId.NUMBER_OF_QUEUES });
    return seen;
  }

  close(): Promise<void> {
    return this.nvme.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The drivers, by name: each opens its device in `space`. */
export const DMA_DRIVERS: Record<DmaTestDriver['name'], (space: AddressSpace) => Promise<DmaTestDriver>> = {
  edu: (space) => Promise.resolve(new EduDmaDriver(space, EduDevice.open(space, BDF.edu))),
  nvme: async (space) => new NvmeDmaDriver(space, await NvmeController.open(space, BDF.nvme, { mode: 'interrupt' })),
};

/**
 * describe() per driver in an address space opened with `options` (one
 * backend, or one IOMMU mode): `body` gets a fixture whose `driver` is
 * open from before() to after().
 */
export function forEachDmaDriver(
  title: string,
  options: AddressSpaceOptions,
  body: (fx: { readonly driver: DmaTestDriver }) => void,
): void {
  for (const [name, open] of Object.entries(DMA_DRIVERS)) {
    describe(`${title} through ${name}`, () => {
      const fx = {} as { driver: DmaTestDriver; space: AddressSpace };
      before(async () => {
        fx.space = AddressSpace.open(options);
        fx.driver = await open(fx.space);
      });
      after(async () => {
        try {
          await fx.driver?.close();
        } finally {
          fx.space?.close();
        }
      });
      body(fx);
    });
  }
}
