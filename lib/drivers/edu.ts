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
import { checkInstance, checkInt, checkOptions, checkString, hex, kindOf, toBigInt } from '../validate';

/** edu's PCI vendor ID (QEMU's). */
export const EDU_VENDOR = 0x1234;
/** edu's PCI device ID. */
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

/** STATUS bit: the factorial unit is computing. */
export const EDU_STATUS_COMPUTING = 0x01;
/** STATUS bit: raise EDU_IRQ_FACTORIAL when the factorial is done. */
export const EDU_STATUS_IRQ_FACTORIAL = 0x80;
/** DMA_CMD bit: start the transfer (reads 1 while it runs). */
export const EDU_DMA_START = 0x01;
/** DMA_CMD bit: direction, from the device's buffer to RAM (clear: RAM to the buffer). */
export const EDU_DMA_FROM_DEVICE = 0x02;
/** DMA_CMD bit: raise EDU_IRQ_DMA when the transfer is done. */
export const EDU_DMA_IRQ = 0x04;
/** Interrupt status bit of a finished factorial. */
export const EDU_IRQ_FACTORIAL = 0x01;
/** Interrupt status bit of a finished DMA. */
export const EDU_IRQ_DMA = 0x100;

/** The device's DMA buffer: 4 KiB at this address on the device's side. */
export const EDU_BUFFER_ADDR = 0x40000n;
/** The size in bytes of edu's DMA buffer. */
export const EDU_BUFFER_SIZE = 4096;
/** edu only drives 28 address bits: IOVAs handed to it must lie below this. */
export const EDU_DMA_LIMIT = 1n << 28n;

/** How {@link EduDevice.factorial}, {@link EduDevice.dmaToDevice} and {@link EduDevice.dmaFromDevice} wait for the device. */
export interface EduWaitOptions {
  /** Give up after this many milliseconds (default 5000) with a {@link VfioStateError} 'ETIMEDOUT'. */
  timeoutMs?: number;
  /** Raise the completion interrupt (for interrupt-driven use). */
  interrupt?: boolean;
  /**
   * Wait for the completion interrupt on this vector (MSI or INTx) instead
   * of polling; it is handled: acknowledged, and INTx unmasked.
   */
  irq?: IrqVector;
  /** With `irq`: stop waiting when it aborts (the promise rejects with its reason). */
  signal?: AbortSignal;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The wait options of an operation, checked before the device is touched. */
function checkWait(options: EduWaitOptions): void {
  const o = checkOptions(options);
  if (o.timeoutMs !== undefined && (typeof o.timeoutMs !== 'number' || !(o.timeoutMs >= 0)))
    throw new TypeError(
      `options.timeoutMs must be a non-negative number of milliseconds, not ${typeof o.timeoutMs === 'number' ? o.timeoutMs : kindOf(o.timeoutMs)}`,
    );
  if (o.irq !== undefined) checkInstance(o.irq, IrqVector, 'options.irq');
  if (o.signal !== undefined) checkInstance(o.signal, AbortSignal, 'options.signal');
}

/** Options of {@link EduDevice}. */
export interface EduOptions {
  /**
   * Allow DMA transfers that reach the last byte of edu's buffer. QEMU 7.2's
   * edu has an off-by-one in its range check: such a transfer (4096 bytes at
   * offset 0, or 1 byte at offset 4095) aborts the whole virtual machine
   * ("hw_error: EDU: DMA range ... out of bounds"); newer QEMU (10 and up)
   * takes it. Default false: such transfers are refused with a RangeError.
   */
  wholeBuffer?: boolean;
}

/**
 * A driver for QEMU's edu device: its DMA engine (4 KiB buffer, 28-bit
 * IOVAs), its factorial unit and its interrupts, over BAR0. Each operation
 * completes by polling, or by an interrupt on a vector you enabled
 * (`options.irq`).
 *
 * @example
 * ```ts
 * using space = AddressSpace.open();
 * using edu = EduDevice.open(space);
 * using buf = DmaBuffer.allocate(4096);
 * const m = space.map(buf, { limit: 1n << 28n }); // edu drives 28 address bits
 * await edu.dmaToDevice(m.iova, 0, 64);
 * ```
 */

export class EduDevice implements Disposable {
  /** BAR0: edu's registers (`EduReg`). */
  readonly bar0: Region;
  /** How many bytes of the buffer transfers may reach: 4095 unless `wholeBuffer`. */
  private readonly reach: number;

  /**
   * Drives an opened edu device, and turns its bus mastering on.
   *
   * @param device - The device, open in an address space.
   * @param options - `wholeBuffer`: allow transfers to the buffer's last byte (QEMU 10 and up).
   * @throws TypeError when `device` is not a VfioPciDevice or `options` not an object.
   * @throws {@link VfioStateError} `ERR_VFIO_WRONG_DEVICE` when it is not edu (1234:11e8).
   */
  constructor(
    /** The PCI device. */
    readonly device: VfioPciDevice,
    options: EduOptions = {},
  ) {
    checkInstance(device, VfioPciDevice, 'device');
    if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, not ${kindOf(options)}`);
    this.reach = options.wholeBuffer === true ? EDU_BUFFER_SIZE : EDU_BUFFER_SIZE - 1;
    if (device.pci.vendor !== EDU_VENDOR || device.pci.device !== EDU_DEVICE) {
      throw new VfioStateError(
        `${device.bdf} is ${device.pci.vendor.toString(16)}:${device.pci.device.toString(16)}, not an edu device (1234:11e8)`,
        'ERR_VFIO_WRONG_DEVICE',
      );
    }
    this.bar0 = device.bar(0);
    // Start from a quiet device, as a driver's probe does: edu's status register outlives its
    // users, so interrupts a previous one raised and never acknowledged are acknowledged here.
    const stale = this.bar0.read32(EduReg.IRQ_STATUS);
    if (stale !== 0) this.bar0.write32(EduReg.IRQ_ACK, stale);
    device.setBusMaster(true);
  }

  /**
   * Opens the edu device at `bdf` in `space` (closing it again if it is not edu).
   *
   * @param bdf - Its PCI address (default '0000:00:03.0', where the test guest has it).
   * @param options - See {@link EduOptions}.
   * @throws What {@link AddressSpace.openDevice} throws, and `ERR_VFIO_WRONG_DEVICE`.
   */
  static open(space: AddressSpace, bdf = '0000:00:03.0', options: EduOptions = {}): EduDevice {
    checkInstance(space, AddressSpace, 'space');
    checkString(bdf, 'bdf');
    checkOptions(options);
    const device = space.openDevice(bdf);
    try {
      return new EduDevice(device, options);
    } catch (err) {
      device.close();
      throw err;
    }
  }

  /**
   * Major and minor version from the identification register (0xRRrr00ed).
   *
   * @throws {@link VfioStateError} `ERR_VFIO_WRONG_DEVICE` when the register does not end in 0xed.
   */
  get version(): {
    /** The major version (1 for QEMU's edu). */
    major: number;
    /** The minor version. */
    minor: number;
  } {
    const id = this.bar0.read32(EduReg.ID);
    if ((id & 0xff) !== 0xed) throw new VfioStateError(`edu identification register reads ${hex(id)}`, 'ERR_VFIO_WRONG_DEVICE');
    return { major: id >>> 24, minor: (id >>> 16) & 0xff };
  }

  /**
   * The liveness check: writes `value` and reads back what the device makes
   * of it, its bitwise inverse (`~value >>> 0`) when the device is alive.
   */
  liveness(value: number): number {
    checkInt(value, 'value', 0, 0xffffffff);
    this.bar0.write32(EduReg.LIVENESS, value >>> 0);
    return this.bar0.read32(EduReg.LIVENESS);
  }

  /**
   * Starts computing n! (32 bits, modulo 2^32); does not wait. With
   * `interrupt`, the device raises `EDU_IRQ_FACTORIAL` when done.
   */
  startFactorial(n: number, interrupt = false): void {
    checkInt(n, 'n', 0, 0xffffffff);
    this.bar0.write32(EduReg.STATUS, interrupt ? EDU_STATUS_IRQ_FACTORIAL : 0);
    this.bar0.write32(EduReg.FACTORIAL, n >>> 0);
  }

  /** Whether the factorial unit is still computing. */
  get factorialBusy(): boolean {
    return (this.bar0.read32(EduReg.STATUS) & EDU_STATUS_COMPUTING) !== 0;
  }

  /** The factorial register: the last result, once not busy. */
  get factorialResult(): number {
    return this.bar0.read32(EduReg.FACTORIAL);
  }

  /**
   * n! modulo 2^32, computed by the device: polled, or completed by the
   * interrupt on `options.irq`.
   *
   * @throws {@link VfioStateError} `ETIMEDOUT` after `options.timeoutMs`,
   *   `ERR_VFIO_UNEXPECTED_IRQ` when the interrupt's status is not the factorial's.
   */
  async factorial(n: number, options: EduWaitOptions = {}): Promise<number> {
    checkWait(options);
    this.startFactorial(n, options.interrupt || options.irq !== undefined);
    await this.complete(() => this.factorialBusy, EDU_IRQ_FACTORIAL, 'factorial', options);
    return this.factorialResult;
  }

  /**
   * Programs a DMA and starts it; does not wait (see `dmaBusy`).
   *
   * @param toDevice - true: from memory at `iova` into the buffer; false: from the buffer to `iova`.
   * @param iova - Where in the address space: the transfer must end below 2^28 (`EDU_DMA_LIMIT`).
   * @param bufferOffset - Byte offset in edu's 4 KiB buffer.
   * @param length - Bytes, 1..4096, within the buffer from `bufferOffset`.
   * @param interrupt - Raise `EDU_IRQ_DMA` when done.
   * @throws RangeError for a length, offset or IOVA out of range.
   * @throws {@link VfioStateError} `ERR_VFIO_BUSY` while another DMA runs.
   */
  startDma(toDevice: boolean, iova: bigint, bufferOffset: number, length: number, interrupt = false): void {
    const addr = toBigInt(iova, 'iova');
    checkInt(bufferOffset, 'bufferOffset', 0, EDU_BUFFER_SIZE - 1);
    checkInt(length, 'length', 1, EDU_BUFFER_SIZE);
    if (bufferOffset + length > EDU_BUFFER_SIZE) {
      throw new RangeError(`[${bufferOffset}, +${length}) is outside edu's ${EDU_BUFFER_SIZE}-byte buffer`);
    }
    if (bufferOffset + length > this.reach) {
      throw new RangeError(
        `[${bufferOffset}, +${length}) reaches the last byte of edu's buffer, which aborts QEMU 7.2's edu: open it with { wholeBuffer: true } on QEMU 10 and up`,
      );
    }
    if (addr + BigInt(length) > EDU_DMA_LIMIT) throw new RangeError(`IOVA ${hex(addr)} + ${length} is beyond edu's 28-bit DMA reach`);
    if (this.dmaBusy) throw new VfioStateError('an edu DMA is already running', 'ERR_VFIO_BUSY');
    const inside = EDU_BUFFER_ADDR + BigInt(bufferOffset);
    this.bar0.write64(EduReg.DMA_SRC, toDevice ? addr : inside);
    this.bar0.write64(EduReg.DMA_DST, toDevice ? inside : addr);
    this.bar0.write64(EduReg.DMA_COUNT, BigInt(length));
    this.bar0.write64(EduReg.DMA_CMD, BigInt(EDU_DMA_START | (toDevice ? 0 : EDU_DMA_FROM_DEVICE) | (interrupt ? EDU_DMA_IRQ : 0)));
  }

  /** Whether a DMA is still running. */
  get dmaBusy(): boolean {
    return (this.bar0.read64(EduReg.DMA_CMD) & BigInt(EDU_DMA_START)) !== 0n;
  }

  /**
   * Copies `length` bytes from memory at `iova` into the device's buffer at
   * `bufferOffset`, and waits for the DMA to finish (polling, or `options.irq`).
   *
   * @throws What {@link EduDevice.startDma} throws; {@link VfioStateError}
   *   `ETIMEDOUT` after `options.timeoutMs`, `ERR_VFIO_UNEXPECTED_IRQ`.
   */
  async dmaToDevice(iova: bigint, bufferOffset: number, length: number, options: EduWaitOptions = {}): Promise<void> {
    checkWait(options);
    this.startDma(true, iova, bufferOffset, length, options.interrupt || options.irq !== undefined);
    await this.complete(() => this.dmaBusy, EDU_IRQ_DMA, 'DMA to the device', options);
  }

  /**
   * Copies `length` bytes from the device's buffer at `bufferOffset` to
   * memory at `iova`, and waits for the DMA to finish. A write to an IOVA that
   * is not mapped is blocked by the IOMMU (and logged by the kernel).
   *
   * @throws What {@link EduDevice.startDma} throws; {@link VfioStateError}
   *   `ETIMEDOUT` after `options.timeoutMs`, `ERR_VFIO_UNEXPECTED_IRQ`.
   */
  async dmaFromDevice(bufferOffset: number, iova: bigint, length: number, options: EduWaitOptions = {}): Promise<void> {
    checkWait(options);
    this.startDma(false, iova, bufferOffset, length, options.interrupt || options.irq !== undefined);
    await this.complete(() => this.dmaBusy, EDU_IRQ_DMA, 'DMA from the device', options);
  }

  /** The interrupt status register: the bits of every interrupt raised and not yet acknowledged. */
  get interruptStatus(): number {
    return this.bar0.read32(EduReg.IRQ_STATUS);
  }

  /** Raises an interrupt with `value`'s bits OR-ed into the status (edu's test register). */
  raiseInterrupt(value: number): void {
    checkInt(value, 'value', 0, 0xffffffff);
    this.bar0.write32(EduReg.IRQ_RAISE, value >>> 0);
  }

  /** Clears `value`'s bits from the interrupt status; when none are left, the device lowers INTx. */
  acknowledgeInterrupt(value: number): void {
    checkInt(value, 'value', 0, 0xffffffff);
    this.bar0.write32(EduReg.IRQ_ACK, value >>> 0);
  }

  /**
   * An interrupt handler as edu's spec asks for: writes the interrupt status
   * to the acknowledge register (which lowers INTx; MSI needs it too), then
   * unmasks an automasked (INTx) vector. Returns the status it acknowledged.
   */
  acknowledgePending(irq?: IrqVector): number {
    if (irq !== undefined) checkInstance(irq, IrqVector, 'irq');
    const status = this.interruptStatus;
    if (status !== 0) this.acknowledgeInterrupt(status);
    if (irq?.automasked) irq.unmask();
    return status;
  }

  /** Waits for the next interrupt on `irq` and handles it (acknowledgePending); returns the status. */
  async handleInterrupt(irq: IrqVector, options: IrqWaitOptions = {}): Promise<number> {
    checkInstance(irq, IrqVector, 'irq');
    await irq.wait(options);
    return this.acknowledgePending(irq);
  }

  /** Waits for an operation: its interrupt (which must carry `bit`) when options.irq is given, else by polling. */
  private async complete(busy: () => boolean, bit: number, what: string, options: EduWaitOptions): Promise<void> {
    const { irq, timeoutMs = 5000, signal } = options;
    if (!irq) return this.poll(busy, timeoutMs, what);
    const status = await this.handleInterrupt(irq, { timeoutMs, signal });
    if ((status & bit) === 0 || busy()) {
      throw new VfioStateError(
        `edu ${what}: interrupted with status ${hex(status)}, not its completion (${hex(bit)})`,
        'ERR_VFIO_UNEXPECTED_IRQ',
      );
    }
  }

  private async poll(busy: () => boolean, timeoutMs = 5000, what = 'operation'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (busy()) {
      if (Date.now() > deadline) throw new VfioStateError(`edu ${what} did not finish within ${timeoutMs} ms`, 'ETIMEDOUT');
      await sleep(1);
    }
  }

  /** Closes the PCI device (and its interrupts). */
  close(): void {
    this.device.close();
  }

  /** {@link EduDevice.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
