/**
 * A driver for QEMU's "edu" teaching device (PCI 1234:11e8; QEMU's
 * docs/specs/edu.rst): a DMA engine with a 4 KiB internal buffer, a
 * factorial unit and an interrupt controller, all in BAR0.
 *
 * The first example of the library: open the device in an address space,
 * map memory, and have the device move bytes between that memory and its
 * buffer.
 */
import { AddressSpace } from '../address-space';
import { VfioPciDevice } from '../device';
import { VfioStateError } from '../errors';
import { IrqVector, IrqWaitOptions } from '../interrupts';
import { Region } from '../region';
import { hex, toBigInt } from '../validate';

export const EDU_VENDOR = 0x1234;
export const EDU_DEVICE = 0x11e8;

/** BAR0 registers (32-bit below 0x80, 32 or 64-bit from 0x80). */
export const EduReg = {
  ID: 0x00,
  LIVENESS: 0x04,
  FACTORIAL: 0x08,
  STATUS: 0x20,
  IRQ_STATUS: 0x24,
  IRQ_RAISE: 0x60,
  IRQ_ACK: 0x64,
  DMA_SRC: 0x80,
  DMA_DST: 0x88,
  DMA_COUNT: 0x90,
  DMA_CMD: 0x98,
} as const;

export const EDU_STATUS_COMPUTING = 0x01;
export const EDU_STATUS_IRQ_FACTORIAL = 0x80;
export const EDU_DMA_START = 0x01;
export const EDU_DMA_FROM_DEVICE = 0x02;
export const EDU_DMA_IRQ = 0x04;
export const EDU_IRQ_FACTORIAL = 0x01;
export const EDU_IRQ_DMA = 0x100;

/** The device's DMA buffer: 4 KiB at this address on the device's side. */
export const EDU_BUFFER_ADDR = 0x40000n;
export const EDU_BUFFER_SIZE = 4096;
/** edu only drives 28 address bits: IOVAs handed to it must lie below this. */
export const EDU_DMA_LIMIT = 1n << 28n;

export interface EduWaitOptions {
  /** Give up after this long (default 5 s). */
  timeoutMs?: number;
  /** Raise the completion interrupt (for interrupt-driven use). */
  interrupt?: boolean;
  /**
   * Wait for the completion interrupt on this vector (MSI or INTx) instead
   * of polling; it is handled: acknowledged, and INTx unmasked.
   */
  irq?: IrqVector;
  signal?: AbortSignal;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class EduDevice implements Disposable {
  readonly bar0: Region;

  constructor(readonly device: VfioPciDevice) {
    if (device.pci.vendor !== EDU_VENDOR || device.pci.device !== EDU_DEVICE) {
      throw new VfioStateError(`${device.bdf} is ${device.pci.vendor.toString(16)}:${device.pci.device.toString(16)}, not an edu device (1234:11e8)`, 'ERR_VFIO_WRONG_DEVICE');
    }
    this.bar0 = device.bar(0);
    device.setBusMaster(true);
  }

  /** Opens the edu device at `bdf` in `space`. */
  static open(space: AddressSpace, bdf = '0000:00:03.0'): EduDevice {
    const device = space.openDevice(bdf);
    try {
      return new EduDevice(device);
    } catch (err) {
      device.close();
      throw err;
    }
  }

  /** Major and minor version from the identification register (0xRRrr00ed). */
  get version(): { major: number; minor: number } {
    const id = this.bar0.read32(EduReg.ID);
    if ((id & 0xff) !== 0xed) throw new VfioStateError(`edu identification register reads ${hex(id)}`, 'ERR_VFIO_WRONG_DEVICE');
    return { major: id >>> 24, minor: (id >>> 16) & 0xff };
  }

  /** The liveness check: the device returns the bitwise inverse of what was written. */
  liveness(value: number): number {
    this.bar0.write32(EduReg.LIVENESS, value >>> 0);
    return this.bar0.read32(EduReg.LIVENESS);
  }

  /** Starts n! (32-bit result); with `interrupt`, raises EDU_IRQ_FACTORIAL when done. */
  startFactorial(n: number, interrupt = false): void {
    this.bar0.write32(EduReg.STATUS, interrupt ? EDU_STATUS_IRQ_FACTORIAL : 0);
    this.bar0.write32(EduReg.FACTORIAL, n >>> 0);
  }

  get factorialBusy(): boolean {
    return (this.bar0.read32(EduReg.STATUS) & EDU_STATUS_COMPUTING) !== 0;
  }

  get factorialResult(): number {
    return this.bar0.read32(EduReg.FACTORIAL);
  }

  /** n! modulo 2^32, computed by the device (polled). */
  async factorial(n: number, options: EduWaitOptions = {}): Promise<number> {
    this.startFactorial(n, options.interrupt || options.irq !== undefined);
    await this.complete(() => this.factorialBusy, EDU_IRQ_FACTORIAL, 'factorial', options);
    return this.factorialResult;
  }

  /** Programs a DMA; `toDevice`: IOVA -> buffer, else buffer -> IOVA. Does not wait. */
  startDma(toDevice: boolean, iova: bigint, bufferOffset: number, length: number, interrupt = false): void {
    const addr = toBigInt(iova, 'iova');
    if (!Number.isInteger(length) || length <= 0 || length > EDU_BUFFER_SIZE) throw new RangeError(`length must be 1..${EDU_BUFFER_SIZE}, not ${length}`);
    if (!Number.isInteger(bufferOffset) || bufferOffset < 0 || bufferOffset + length > EDU_BUFFER_SIZE) {
      throw new RangeError(`[${bufferOffset}, +${length}) is outside edu's ${EDU_BUFFER_SIZE}-byte buffer`);
    }
    if (addr + BigInt(length) > EDU_DMA_LIMIT) throw new RangeError(`IOVA ${hex(addr)} + ${length} is beyond edu's 28-bit DMA reach`);
    if (this.dmaBusy) throw new VfioStateError('an edu DMA is already running', 'ERR_VFIO_BUSY');
    const inside = EDU_BUFFER_ADDR + BigInt(bufferOffset);
    this.bar0.write64(EduReg.DMA_SRC, toDevice ? addr : inside);
    this.bar0.write64(EduReg.DMA_DST, toDevice ? inside : addr);
    this.bar0.write64(EduReg.DMA_COUNT, BigInt(length));
    this.bar0.write64(EduReg.DMA_CMD, BigInt(EDU_DMA_START | (toDevice ? 0 : EDU_DMA_FROM_DEVICE) | (interrupt ? EDU_DMA_IRQ : 0)));
  }

  get dmaBusy(): boolean {
    return (this.bar0.read64(EduReg.DMA_CMD) & BigInt(EDU_DMA_START)) !== 0n;
  }

  /** Copies `length` bytes from memory at `iova` into the device's buffer at `bufferOffset`. */
  async dmaToDevice(iova: bigint, bufferOffset: number, length: number, options: EduWaitOptions = {}): Promise<void> {
    this.startDma(true, iova, bufferOffset, length, options.interrupt || options.irq !== undefined);
    await this.complete(() => this.dmaBusy, EDU_IRQ_DMA, 'DMA to the device', options);
  }

  /** Copies `length` bytes from the device's buffer at `bufferOffset` to memory at `iova`. */
  async dmaFromDevice(bufferOffset: number, iova: bigint, length: number, options: EduWaitOptions = {}): Promise<void> {
    this.startDma(false, iova, bufferOffset, length, options.interrupt || options.irq !== undefined);
    await this.complete(() => this.dmaBusy, EDU_IRQ_DMA, 'DMA from the device', options);
  }

  get interruptStatus(): number {
    return this.bar0.read32(EduReg.IRQ_STATUS);
  }

  raiseInterrupt(value: number): void {
    this.bar0.write32(EduReg.IRQ_RAISE, value >>> 0);
  }

  acknowledgeInterrupt(value: number): void {
    this.bar0.write32(EduReg.IRQ_ACK, value >>> 0);
  }

  /**
   * An interrupt handler as edu's spec asks for: writes the interrupt status
   * to the acknowledge register (which lowers INTx; MSI needs it too), then
   * unmasks an automasked (INTx) vector. Returns the status it acknowledged.
   */
  acknowledgePending(irq?: IrqVector): number {
    const status = this.interruptStatus;
    if (status !== 0) this.acknowledgeInterrupt(status);
    if (irq?.automasked) irq.unmask();
    return status;
  }

  /** Waits for the next interrupt on `irq` and handles it (acknowledgePending); returns the status. */
  async handleInterrupt(irq: IrqVector, options: IrqWaitOptions = {}): Promise<number> {
    await irq.wait(options);
    return this.acknowledgePending(irq);
  }

  /** Waits for an operation: its interrupt (which must carry `bit`) when options.irq is given, else by polling. */
  private async complete(busy: () => boolean, bit: number, what: string, options: EduWaitOptions): Promise<void> {
    const { irq, timeoutMs = 5000, signal } = options;
    if (!irq) return this.poll(busy, timeoutMs, what);
    const status = await this.handleInterrupt(irq, { timeoutMs, signal });
    if ((status & bit) === 0 || busy()) {
      throw new VfioStateError(`edu ${what}: interrupted with status ${hex(status)}, not its completion (${hex(bit)})`, 'ERR_VFIO_UNEXPECTED_IRQ');
    }
  }

  private async poll(busy: () => boolean, timeoutMs = 5000, what = 'operation'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (busy()) {
      if (Date.now() > deadline) throw new VfioStateError(`edu ${what} did not finish within ${timeoutMs} ms`, 'ETIMEDOUT');
      await sleep(1);
    }
  }

  close(): void {
    this.device.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
