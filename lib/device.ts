/**
 * A PCI device through VFIO: regions (BARs as zero-copy register windows),
 * config space, reset, bus mastering, and dma-buf export of its BARs.
 * Opened from an AddressSpace, which it is attached to for DMA.
 */
import { EventEmitter } from 'node:events';
import { VfioStateError } from './errors';
import { DeviceInterrupts } from './interrupts';
import { NativeDevice, NativeFile } from './native';
import { PciRegion, Region, regionInfo, RegionInfo } from './region';
import { PciDeviceInfo } from './sysfs';
import { checkArray, checkInt, checkObject, toBigInt } from './validate';

/** VFIO_DEVICE_GET_INFO flag: the device has a reset method (FLR, PM or bus reset). */
export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
/** VFIO_DEVICE_GET_INFO flag: a vfio-pci device. */
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;

/** Config space offset of the 16-bit Command register (PCI Local Bus spec). */
export const PCI_COMMAND = 0x04;
/** Command register bit: the device decodes memory accesses to its BARs. */
export const PCI_COMMAND_MEMORY = 1 << 1;
/** Command register bit: bus mastering, the device's right to issue DMA. */
export const PCI_COMMAND_MASTER = 1 << 2;
/** Command register bit: the device's INTx pin is disabled. */
export const PCI_COMMAND_INTX_DISABLE = 1 << 10;

/** What a device tells the address space it was opened in. */
export interface DeviceOwner {
  /** @internal called by the device when it closes */
  deviceClosed(device: VfioPciDevice): void;
}

/**
 * @internal What depends on a device (its {@link DeviceInterrupts}, the
 * {@link P2PProvider}s of its BARs), told of what happens to the device by
 * direct calls, never through the device's events: a user's listener that
 * throws would cut an event short and leave them behind.
 */
export interface DeviceDependent {
  /** The kernel revoked the dma-bufs exported from the device's BARs (a reset, or memory decoding turned off). */
  memoryRevoked?(): void;
  /** The device is closing: tear down what is left and let go of it (remove itself with removeDependent). */
  close(): void;
}

/** Capability ID of PCI power management (PCI Local Bus spec). */
const PCI_CAP_ID_PM = 0x01;
/** Offset of the power management control/status register (PMCSR) in its capability. */
const PCI_PM_CTRL = 4;
/** PMCSR's power state field: D0 0, D1 1, D2 2, D3hot 3. */
const PCI_PM_CTRL_STATE_MASK = 0x3;
const PCI_D3HOT = 3;
/** Status register bit: the device has a capability list, its head at PCI_CAPABILITY_LIST. */
const PCI_STATUS_CAP_LIST = 0x10;
const PCI_STATUS = 0x06;
const PCI_CAPABILITY_LIST = 0x34;

/** The config space offset of capability `id` in the standard list (read through `file` at `base`), or undefined. */
function findCapability(file: NativeDevice, base: bigint, id: number): number | undefined {
  const byte = (at: number): number => {
    const b = new Uint8Array(1);
    return file.pread(base + BigInt(at), b) === 1 ? b[0] : 0;
  };
  if ((byte(PCI_STATUS) & PCI_STATUS_CAP_LIST) === 0) return undefined;
  let at = byte(PCI_CAPABILITY_LIST) & ~3;
  for (let hops = 0; at >= 0x40 && hops < 48; hops++) {
    if (byte(at) === id) return at;
    at = byte(at + 1) & ~3;
  }
  return undefined;
}

/**
 * Calls every step, also after one throws, then throws the first error met:
 * the steps of a teardown all run whatever one of them does.
 */
function runAll(steps: Iterable<() => void>): void {
  let failure: { error: unknown } | undefined;
  for (const step of steps) {
    try {
      step();
    } catch (error) {
      failure ??= { error };
    }
  }
  if (failure) throw failure.error;
}

/**
 * A PCI device bound to vfio-pci, opened through an {@link AddressSpace}
 * ({@link AddressSpace.openDevice}) and attached to it for DMA: its regions
 * (BARs as zero-copy register windows, config space), reset, bus mastering,
 * interrupts as events, and dma-buf export of its BARs for peer-to-peer.
 *
 * Events, each emitted after the library has done its own part (its P2P
 * providers revoked, or everything closed), so a listener that throws
 * cannot keep it from being done; the listener's error is then thrown by the
 * call that emitted the event:
 *  - `'reset'`: {@link VfioPciDevice.reset} reset the device; the kernel
 *    revoked the dma-bufs exported from its BARs.
 *  - `'memory-disabled'`: its BARs stopped decoding (a write of the Command
 *    register with the memory-enable bit clear, by
 *    {@link VfioPciDevice.setMemoryEnabled} or through {@link VfioPciDevice.config});
 *    the kernel revoked the dma-bufs exported from them.
 *  - `'close'`: {@link VfioPciDevice.close} closed it (`isClosed` is true).
 */
export class VfioPciDevice extends EventEmitter implements Disposable {
  /** @internal */
  readonly native: NativeDevice;
  private regionCache = new Map<number, Region>();
  private irqs?: DeviceInterrupts;
  private readonly dependents = new Set<DeviceDependent>();
  private closing = false;
  private closed = false;
  /**
   * Whether the BARs decode memory (the Command register's memory-enable
   * bit), as last written through config space: vfio-pci turns it on when
   * it enables the device at open.
   */
  private memoryOn = true;
  /** resetAsync() calls under way: the BARs cannot be accessed meanwhile. */
  private resetting = 0;
  /** Whether a write of the power management control register put the device in D3hot (a reset brings it back to D0). */
  private d3hot = false;

  /** @internal */
  constructor(
    native: NativeDevice,
    /** What sysfs says of the device: IDs, class, driver, IOMMU group, resources. */
    readonly pci: PciDeviceInfo,
    private readonly owner: DeviceOwner,
  ) {
    super();
    this.native = native;
  }

  /** The device's PCI address, e.g. '0000:00:03.0'. */
  get bdf(): string {
    return this.pci.bdf;
  }

  private live(): NativeDevice {
    if (this.closed) throw new VfioStateError(`device ${this.bdf} is closed`, 'ERR_VFIO_CLOSED');
    return this.native;
  }

  /**
   * VFIO_DEVICE_GET_INFO: what VFIO offers of the device.
   *
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close().
   */
  info(): {
    /** VFIO_DEVICE_FLAGS_*: RESET (1, the device can be reset), PCI (2), CAPS (128), ... */
    flags: number;
    /** How many regions (region indexes 0 .. numRegions - 1; vfio-pci has at least 9). */
    numRegions: number;
    /** How many IRQ indexes (vfio-pci: INTx, MSI, MSI-X, ERR, REQ). */
    numIrqs: number;
  } {
    return this.live().info();
  }

  /**
   * VFIO_DEVICE_GET_REGION_INFO, with its capabilities (sparse mmap areas, type).
   *
   * @param index - The region index: {@link PciRegion} (BARs 0-5, ROM 6, CONFIG 7, VGA 8) or a device-specific one.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close().
   * @throws {@link VfioError} (syscall `ioctl(VFIO_DEVICE_GET_REGION_INFO)`) EINVAL for an index the device does not have.
   */
  regionInfo(index: number): RegionInfo {
    checkInt(index, 'index', 0, 0xffffffff);
    return regionInfo(this.live().regionInfo(index));
  }

  /**
   * A region's register window: mmapped when the region allows mmap of the
   * whole of it, else accessed through pread/pwrite. Created once per index
   * and closed with the device.
   *
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close().
   * @throws {@link VfioError} from `ioctl(VFIO_DEVICE_GET_REGION_INFO)` or `mmap`.
   */
  region(index: number): Region {
    checkInt(index, 'index', 0, 0xffffffff);
    this.live();
    let r = this.regionCache.get(index);
    if (!r) {
      const info = this.regionInfo(index);
      r = index === PciRegion.CONFIG ? new Region(this.configFile(info.offset), info, false) : new Region(this.native, info, true);
      this.regionCache.set(index, r);
      if (index <= PciRegion.BAR5) r.setOffline(this.barOffline(index));
    }
    return r;
  }

  /**
   * Why BAR `index` cannot be accessed now, or undefined when it can: VFIO
   * zaps the BARs' mmaps while memory decoding is off (and while the device
   * resets), and a load or store there is a SIGBUS.
   */
  private barOffline(index: number): VfioStateError | undefined {
    if (this.resetting > 0)
      return new VfioStateError(
        `BAR ${index} of ${this.bdf} cannot be accessed while the device resets (resetAsync() is under way): await it first`,
        'ERR_VFIO_RESETTING',
      );
    if (this.d3hot)
      return new VfioStateError(
        `BAR ${index} of ${this.bdf} cannot be accessed: the device is in power state D3hot (written to its power ` +
          `management control register, and VFIO unmaps the BARs meanwhile); write D0 there, or reset the device`,
        'ERR_VFIO_MEMORY_DISABLED',
      );
    if (!this.memoryOn)
      return new VfioStateError(
        `BAR ${index} of ${this.bdf} cannot be accessed: its memory decoding is off (the Command register's memory-enable ` +
          `bit is clear, and VFIO unmaps the BARs meanwhile); setMemoryEnabled(true) turns it back on`,
        'ERR_VFIO_MEMORY_DISABLED',
      );
    return undefined;
  }

  /**
   * A write put the power management control register's state field:
   * vfio-pci moves the device to that power state, and in D3hot unmaps the
   * BARs and revokes their dma-bufs, as with memory decoding off.
   */
  private powerStateWritten(state: number): void {
    const was = this.d3hot;
    this.d3hot = state === PCI_D3HOT;
    this.updateBars();
    if (this.d3hot && !was) this.revokeMemory('memory-disabled');
  }

  /** Every open BAR region follows barOffline(): accessible again, or throwing instead of touching its mapping. */
  private updateBars(): void {
    for (const [index, r] of this.regionCache) if (index <= PciRegion.BAR5) r.setOffline(this.barOffline(index));
  }

  /**
   * A write put the Command register's low byte, memory-enable bit `on`:
   * the BARs' regions follow at once (before anything else runs); when it
   * is off, the kernel revoked the BARs' dma-bufs too.
   */
  private commandWritten(on: boolean): void {
    this.memoryOn = on;
    this.updateBars();
    if (!on) this.revokeMemory('memory-disabled');
  }

  /**
   * The device file as the config region uses it, watched: a write that
   * puts the Command register's low byte with the memory-enable bit clear
   * revokes the BARs' dma-bufs in the kernel (vfio-pci does it for every
   * write at PCI_COMMAND that clears the bit, whatever the bit was) and
   * unmaps the BARs, so it counts as memory disabled here too, however it
   * was made; one with the bit set makes the BARs accessible again.
   */
  private configFile(regionOffset: bigint): NativeDevice {
    const native = this.native;
    const command = regionOffset + BigInt(PCI_COMMAND);
    let pmControl: bigint | null | undefined; // PMCSR's offset in the file; null without a PM capability
    /** The byte of `source` written at file offset `register`, or -1 when the write does not cover it. */
    const byteAt = (register: bigint, offset: bigint, source: Uint8Array): number => {
      const at = register - offset;
      return at >= 0n && at < BigInt(source.length) ? source[Number(at)] : -1;
    };
    const file: Pick<NativeDevice, 'pread' | 'pwrite' | 'mmap'> = {
      pread: (offset, target) => native.pread(offset, target),
      pwrite: (offset, source) => {
        if (pmControl === undefined) {
          const pm = findCapability(native, regionOffset, PCI_CAP_ID_PM);
          pmControl = pm === undefined ? null : regionOffset + BigInt(pm + PCI_PM_CTRL);
        }
        const cmd = byteAt(command, offset, source);
        const pmcsr = pmControl === null ? -1 : byteAt(pmControl, offset, source);
        const written = native.pwrite(offset, source);
        if (cmd >= 0) this.commandWritten((cmd & PCI_COMMAND_MEMORY) !== 0);
        if (pmcsr >= 0) this.powerStateWritten(pmcsr & PCI_PM_CTRL_STATE_MASK);
        return written;
      },
      mmap: (offset, length, writable) => native.mmap(offset, length, writable),
    };
    return file as NativeDevice; // a Region calls nothing else of its device
  }

  /**
   * BAR `n` as a {@link Region}: `region(n)`.
   *
   * @param n - The BAR index, 0 to 5.
   * @throws TypeError when `n` is not a number; RangeError when it is not an integer in 0..5.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close().
   */
  bar(n: number): Region {
    checkInt(n, 'n (a BAR index)', 0, 5);
    return this.region(n);
  }

  /**
   * Config space (region 7), through pread/pwrite: VFIO virtualizes parts of
   * it, so it is never mmapped. A write of the Command register with the
   * memory-enable bit clear counts as memory disabled, as
   * {@link VfioPciDevice.setMemoryEnabled}(false) does: the BARs' regions
   * throw `ERR_VFIO_MEMORY_DISABLED` instead of touching their unmapped
   * mmaps, P2P providers revoke, `'memory-disabled'` is emitted (a
   * listener's error is thrown by the write, after it was made). A write
   * with the bit set makes the BARs accessible again.
   */
  get config(): Region {
    return this.region(PciRegion.CONFIG);
  }

  /**
   * Turns bus mastering (the device's right to DMA) on or off in the command register.
   *
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close().
   * @throws {@link VfioError} from the config space pread/pwrite.
   */
  setBusMaster(on: boolean): void {
    this.updateCommand(PCI_COMMAND_MASTER, on);
  }

  /**
   * Turns memory decoding of the BARs on or off in the command register.
   * Off makes VFIO unmap the BARs (a load there would be a SIGBUS): their
   * regions' accessors throw `ERR_VFIO_MEMORY_DISABLED` until it is on
   * again. It also makes the kernel revoke dma-bufs exported from them: the
   * device's P2P providers mark their iommufd mappings revoked, then it
   * emits `'memory-disabled'` (as any write of the Command register through
   * {@link VfioPciDevice.config} that clears the memory-enable bit does).
   *
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close().
   * @throws The error of a `'memory-disabled'` listener, after the write
   *   and the revocation were done.
   */
  setMemoryEnabled(on: boolean): void {
    this.updateCommand(PCI_COMMAND_MEMORY, on);
  }

  private updateCommand(bit: number, on: boolean): void {
    const cmd = this.config.read16(PCI_COMMAND);
    this.config.write16(PCI_COMMAND, on ? cmd | bit : cmd & ~bit);
  }

  /**
   * VFIO_DEVICE_RESET: resets the device (FLR, PM or bus reset, as the kernel
   * can). The kernel revokes dma-bufs exported from its BARs: the device's
   * P2P providers mark their iommufd mappings revoked, then it emits `'reset'`.
   *
   * @throws {@link VfioStateError} `ERR_VFIO_NO_RESET` when the device has no
   *   reset method, `ERR_VFIO_CLOSED` after close().
   * @throws {@link VfioError} (syscall `ioctl(VFIO_DEVICE_RESET)`) when the reset fails.
   * @throws The error of a `'reset'` listener, after the reset and the revocation were done.
   */
  reset(): void {
    this.requireReset();
    this.live().reset();
    this.backToD0();
    this.revokeMemory('reset');
  }

  /**
   * {@link VfioPciDevice.reset} off the event loop: the ioctl runs on a
   * thread of libuv's pool (a function-level reset takes 100 ms or more on
   * hardware) while the device stays referenced. Meanwhile its BARs'
   * accessors throw `ERR_VFIO_RESETTING` (VFIO holds the BARs unmapped for
   * the reset: an access would stall the event loop until it ends). Closing
   * the device meanwhile is safe: the reset finishes on the file it started
   * on, and the promise rejects with `ERR_VFIO_CLOSED`.
   *
   * @throws (rejects) What {@link VfioPciDevice.reset} throws.
   */
  async resetAsync(): Promise<void> {
    this.requireReset();
    const done = this.live().resetAsync();
    this.resetting++;
    this.updateBars();
    try {
      await done;
      this.d3hot = false; // VFIO_DEVICE_RESET puts the device in D0 first
    } finally {
      this.resetting--;
      if (!this.closed) this.updateBars();
    }
    if (this.closed || this.closing) throw new VfioStateError(`device ${this.bdf} was closed while it reset`, 'ERR_VFIO_CLOSED');
    this.revokeMemory('reset');
  }

  /** After a reset: VFIO_DEVICE_RESET puts the device in D0 before resetting it. */
  private backToD0(): void {
    if (!this.d3hot) return;
    this.d3hot = false;
    this.updateBars();
  }

  private requireReset(): void {
    if (!(this.info().flags & VFIO_DEVICE_FLAGS_RESET)) {
      throw new VfioStateError(
        `${this.bdf} has no reset method (no FLR, PM or bus reset: VFIO_DEVICE_FLAGS_RESET is not set)`,
        'ERR_VFIO_NO_RESET',
      );
    }
  }

  /** The kernel revoked the BARs' dma-bufs: every dependent is told, then the listeners of `event`. */
  private revokeMemory(event: 'reset' | 'memory-disabled'): void {
    const steps: (() => void)[] = [];
    for (const d of [...this.dependents]) steps.push(() => d.memoryRevoked?.());
    steps.push(() => this.emit(event));
    runAll(steps);
  }

  /**
   * @internal `dependent` is closed with the device, and told when the
   * kernel revokes the BARs' dma-bufs, by direct calls.
   *
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close().
   */
  addDependent(dependent: DeviceDependent): void {
    if (this.closing) throw new VfioStateError(`device ${this.bdf} is closing`, 'ERR_VFIO_CLOSED');
    this.live();
    this.dependents.add(dependent);
  }

  /** @internal `dependent` closed on its own: the device forgets it. */
  removeDependent(dependent: DeviceDependent): void {
    this.dependents.delete(dependent);
    if (dependent === this.irqs) this.irqs = undefined;
  }

  /**
   * VFIO_DEVICE_FEATURE(GET | DMA_BUF): exports ranges of a region (a BAR)
   * as one dma-buf, the way peer-to-peer memory reaches iommufd
   * ({@link P2PProvider} does this for you). The kernel revokes the dma-buf
   * when the device is reset or stops decoding memory.
   *
   * @param regionIndex - The region (a BAR index).
   * @param ranges - Byte ranges of the region, in order; each non-empty and inside the region.
   * @returns The dma-buf; close it when done (mappings made from it keep their own reference).
   * @throws TypeError or RangeError for a malformed range, or one that is empty or outside the region.
   * @throws {@link VfioError} (syscall `ioctl(VFIO_DEVICE_FEATURE)`): ENOTTY,
   *   EINVAL or EOPNOTSUPP when the kernel or device cannot export dma-bufs
   *   (needs VFIO's dma-buf support and CONFIG_PCI_P2PDMA).
   */
  exportDmaBuf(regionIndex: number, ranges: { offset: number | bigint; length: number | bigint }[]): NativeFile {
    checkInt(regionIndex, 'regionIndex', 0, 0xffffffff);
    checkArray(ranges, 'ranges');
    const info = this.regionInfo(regionIndex);
    const checked = ranges.map((r, i) => {
      checkObject(r, `ranges[${i}]`);
      const offset = toBigInt(r.offset, `ranges[${i}].offset`);
      const length = toBigInt(r.length, `ranges[${i}].length`);
      if (length === 0n || offset + length > info.size) throw new RangeError(`ranges[${i}] is empty or outside region ${regionIndex}`);
      return { offset, length };
    });
    return this.live().dmaBuf(regionIndex, checked);
  }

  /**
   * VFIO_DEVICE_GET_IRQ_INFO, raw; {@link DeviceInterrupts.info} decodes the flags.
   *
   * @param index - The IRQ index ({@link IrqIndex}: INTX 0, MSI 1, MSIX 2, ERR 3, REQ 4).
   * @throws {@link VfioError} EINVAL for an index the device does not have.
   */
  irqInfo(index: number): {
    /** The IRQ index asked for. */
    index: number;
    /** VFIO_IRQ_INFO_*: EVENTFD (1), MASKABLE (2), AUTOMASKED (4), NORESIZE (8). */
    flags: number;
    /** How many vectors the index has (0 when the device lacks it). */
    count: number;
  } {
    checkInt(index, 'index', 0, 0xffffffff);
    return this.live().irqInfo(index);
  }

  /**
   * The device's interrupts: INTx, MSI or MSI-X vectors as events (one
   * object per device, made on first use; torn down when the device closes).
   *
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close().
   */
  get interrupts(): DeviceInterrupts {
    this.live();
    this.irqs ??= new DeviceInterrupts(this);
    return this.irqs;
  }

  /** Whether close() was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Tears the device down, each step by a direct call, all of them whatever
   * one of them throws: its interrupts (disabled, their eventfds closed) and
   * the P2P providers of its BARs (their dma-bufs closed) first, then the
   * regions' views are unmapped, the device file is closed and the device is
   * detached from the address space. Only then, with `isClosed` true, it
   * emits `'close'`. Idempotent. Peer-to-peer mappings of its BARs made
   * through dma-bufs or BAR mmaps hold their own references and stay valid.
   *
   * @throws The first error met, once everything is closed: a step's, or
   *   that of a `'close'` listener (the listeners after it do not run, as
   *   with any EventEmitter).
   */
  close(): void {
    if (this.closed || this.closing) return;
    this.closing = true; // dependents call back (removeDependent) and may call close() again
    const steps: (() => void)[] = [];
    for (const d of [...this.dependents]) steps.push(() => d.close());
    for (const r of this.regionCache.values()) steps.push(() => r.close());
    steps.push(
      () => this.native.close(),
      () => {
        this.dependents.clear();
        this.regionCache.clear();
        this.closed = true;
        this.closing = false;
        this.owner.deviceClosed(this);
      },
      () => this.emit('close'),
    );
    runAll(steps);
  }

  /** {@link VfioPciDevice.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
