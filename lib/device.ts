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
import { toBigInt } from './validate';

export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;

/** PCI config space offsets and bits used here (PCI Local Bus spec). */
export const PCI_COMMAND = 0x04;
export const PCI_COMMAND_MEMORY = 1 << 1;
export const PCI_COMMAND_MASTER = 1 << 2;
export const PCI_COMMAND_INTX_DISABLE = 1 << 10;

export interface DeviceOwner {
  /** @internal called by the device when it closes */
  deviceClosed(device: VfioPciDevice): void;
}

/**
 * Events: 'reset' and 'memory-disabled' (its BARs stop decoding: dma-bufs of
 * them are revoked by the kernel), 'close'.
 */
export class VfioPciDevice extends EventEmitter implements Disposable {
  /** @internal */
  readonly native: NativeDevice;
  private regionCache = new Map<number, Region>();
  private irqs?: DeviceInterrupts;
  private closed = false;

  /** @internal */
  constructor(native: NativeDevice, readonly pci: PciDeviceInfo, private readonly owner: DeviceOwner) {
    super();
    this.native = native;
  }

  get bdf(): string {
    return this.pci.bdf;
  }

  private live(): NativeDevice {
    if (this.closed) throw new VfioStateError(`device ${this.bdf} is closed`, 'ERR_VFIO_CLOSED');
    return this.native;
  }

  /** VFIO_DEVICE_GET_INFO */
  info(): { flags: number; numRegions: number; numIrqs: number } {
    return this.live().info();
  }

  /** VFIO_DEVICE_GET_REGION_INFO, with its capabilities (sparse mmap areas, type). */
  regionInfo(index: number): RegionInfo {
    return regionInfo(this.live().regionInfo(index));
  }

  /** A region's register window, mmapped when the region allows it (created once). */
  region(index: number): Region {
    this.live();
    let r = this.regionCache.get(index);
    if (!r) {
      r = new Region(this.native, this.regionInfo(index), index !== PciRegion.CONFIG);
      this.regionCache.set(index, r);
    }
    return r;
  }

  /** BAR n (0..5). */
  bar(n: number): Region {
    if (!Number.isInteger(n) || n < 0 || n > 5) throw new RangeError(`a BAR index is 0..5, not ${n}`);
    return this.region(n);
  }

  /** Config space, through pread/pwrite. */
  get config(): Region {
    return this.region(PciRegion.CONFIG);
  }

  /** Turns bus mastering (the device's right to DMA) on or off in the command register. */
  setBusMaster(on: boolean): void {
    this.updateCommand(PCI_COMMAND_MASTER, on);
  }

  /** Turns memory decoding of the BARs on or off. Off revokes dma-bufs exported from them. */
  setMemoryEnabled(on: boolean): void {
    this.updateCommand(PCI_COMMAND_MEMORY, on);
    if (!on) this.emit('memory-disabled');
  }

  private updateCommand(bit: number, on: boolean): void {
    const cmd = this.config.read16(PCI_COMMAND);
    this.config.write16(PCI_COMMAND, on ? cmd | bit : cmd & ~bit);
  }

  /** VFIO_DEVICE_RESET. Revokes dma-bufs exported from the device's BARs. */
  reset(): void {
    if (!(this.info().flags & VFIO_DEVICE_FLAGS_RESET)) {
      throw new VfioStateError(`${this.bdf} has no reset method (no FLR, PM or bus reset: VFIO_DEVICE_FLAGS_RESET is not set)`, 'ERR_VFIO_NO_RESET');
    }
    this.live().reset();
    this.emit('reset');
  }

  /** VFIO_DEVICE_FEATURE(GET | DMA_BUF): a dma-buf of ranges of a region (for P2P). */
  exportDmaBuf(regionIndex: number, ranges: { offset: number | bigint; length: number | bigint }[]): NativeFile {
    const info = this.regionInfo(regionIndex);
    const checked = ranges.map((r, i) => {
      const offset = toBigInt(r.offset, `ranges[${i}].offset`);
      const length = toBigInt(r.length, `ranges[${i}].length`);
      if (length === 0n || offset + length > info.size) throw new RangeError(`ranges[${i}] is empty or outside region ${regionIndex}`);
      return { offset, length };
    });
    return this.live().dmaBuf(regionIndex, checked);
  }

  /** VFIO_DEVICE_GET_IRQ_INFO */
  irqInfo(index: number): { index: number; flags: number; count: number } {
    return this.live().irqInfo(index);
  }

  /** The device's interrupts: INTx, MSI or MSI-X as events (torn down when the device closes). */
  get interrupts(): DeviceInterrupts {
    this.live();
    if (!this.irqs || this.irqs.isClosed) this.irqs = new DeviceInterrupts(this);
    return this.irqs;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Closes the regions' views and the device; idempotent. Peer mappings of its BARs stay valid. */
  close(): void {
    if (this.closed) return;
    this.emit('close');
    for (const r of this.regionCache.values()) r.close();
    this.regionCache.clear();
    this.native.close();
    this.closed = true;
    this.owner.deviceClosed(this);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
