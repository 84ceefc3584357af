/**
 * A DMA address space: the IOVAs devices attached to it use. One class over
 * both IOMMU backends (iommufd IOAS, type1 container); the mapping
 * bookkeeping is written once here: IOVA allocation, the table of live
 * mappings, the two-step phys_list mapping (reserve a window, link lists
 * into it), and closing children before the parent.
 */
import * as fs from 'node:fs';
import { EventEmitter } from 'node:events';
import { VfioPciDevice } from './device';
import { VfioStateError } from './errors';
import { Access, BackendKind, FlatFragments, IommuBackend } from './iommu/backend';
import { IommufdBackend, IommufdContext } from './iommu/iommufd';
import { Type1Backend } from './iommu/type1';
import { IovaAllocator, IovaRange, IOVA_SPACE_END } from './iova-allocator';
import { DmaBuffer, PAGE_SIZE } from './memory';
import { PhysList, CpuFragment } from './phys-list';
import { readPciDevice } from './sysfs';
import { checkAligned, checkRangeFits, hex, toBigInt } from './validate';

export type BackendChoice = 'auto' | BackendKind;

export interface AddressSpaceOptions {
  /** 'auto' (default): iommufd when /dev/iommu exists, else type1. */
  backend?: BackendChoice;
  /** Share an open /dev/iommu with other address spaces (needed for copyFrom). */
  iommufd?: IommufdContext;
  /** sysfs root, for tests. */
  sysfs?: string;
}

export interface AllocationOptions {
  /** Alignment of the IOVA; a power of two, at least the page size. */
  align?: number | bigint;
  /** IOVAs must end at or below this (1n << 28n for a 28-bit DMA mask). */
  limit?: number | bigint;
  /** An exact IOVA. */
  iova?: number | bigint;
}

export interface MapOptions extends AllocationOptions {
  offset?: number | bigint;
  length?: number | bigint;
  /** Device access; default read and write. */
  access?: Partial<Access>;
}

const DEFAULT_ACCESS: Access = { read: true, write: true };

function access(a?: Partial<Access>): Access {
  return { ...DEFAULT_ACCESS, ...a };
}

/** A live IOMMU mapping. It holds what it maps, so nothing it reaches can be freed while it lives. */
export class DmaMapping extends EventEmitter implements Disposable {
  private unmapped = false;
  /** Set when the memory behind it was revoked (a P2P dma-buf of a reset device). */
  revoked = false;

  /** @internal */
  constructor(
    private readonly owner: { release(m: DmaMapping, inKernel: boolean): void },
    /** The first mapped byte's IOVA. */
    readonly iova: bigint,
    /** Bytes mapped from `iova`. */
    readonly length: bigint,
    /** What the device reaches through it: kept referenced while mapped. */
    readonly holds: readonly object[],
    /** @internal the page-aligned IOVA range the kernel maps */
    readonly pages: { iova: bigint; length: bigint },
  ) {
    super();
  }

  get active(): boolean {
    return !this.unmapped;
  }

  /** Unmaps (and frees the IOVAs it allocated). Idempotent. */
  unmap(): void {
    if (this.unmapped) return;
    this.owner.release(this, true);
    this.unmapped = true;
  }

  /** @internal the kernel already unmapped it (a covering unmapRange, a closing address space) */
  forget(): void {
    if (this.unmapped) return;
    this.owner.release(this, false);
    this.unmapped = true;
  }

  [Symbol.dispose](): void {
    this.unmap();
  }
}

/**
 * Step 1 of the two-step mapping: an IOVA window reserved in the address
 * space, with nothing mapped. Step 2 links phys_lists into it.
 */
export class IovaWindow implements Disposable {
  private links = new Set<DmaMapping>();
  private released = false;

  /** @internal */
  constructor(private readonly space: AddressSpace, readonly iova: bigint, readonly length: bigint) {}

  /**
   * Maps every fragment of `list` at consecutive IOVAs from `iova + offset`
   * in ONE native call. If a fragment fails, the ones before it are unmapped
   * before the error is thrown: the window is as it was.
   */
  link(list: PhysList, offset: number | bigint = 0, options: { access?: Partial<Access> } = {}): DmaMapping {
    if (this.released) throw new VfioStateError('the IOVA window is released', 'ERR_VFIO_CLOSED');
    const off = toBigInt(offset, 'offset');
    checkAligned(off, PAGE_SIZE, 'offset');
    if (off + list.span > this.length) {
      throw new RangeError(`the list needs ${hex(list.span)} bytes of IOVA at ${hex(off)}, the window has ${hex(this.length)}`);
    }
    const mapping = this.space.linkAt(this.iova + off, list, access(options.access), (m) => this.links.delete(m));
    this.links.add(mapping);
    return mapping;
  }

  /** Unlinks what is still linked and gives the IOVAs back. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true; // first: unlinking below may call back here
    for (const m of [...this.links]) m.unmap();
    this.space.freeIova(this.iova, this.length, this);
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

export class AddressSpace implements Disposable {
  private allocator?: IovaAllocator;
  private mappings = new Set<DmaMapping>();
  private windows = new Set<IovaWindow>();
  private devices = new Set<VfioPciDevice>();
  private closed = false;

  private constructor(readonly backend: IommuBackend, private readonly sysfs: string) {}

  /** Opens an address space on the chosen backend. */
  static open(options: AddressSpaceOptions = {}): AddressSpace {
    const choice = options.backend ?? 'auto';
    if (!['auto', 'iommufd', 'type1'].includes(choice)) throw new TypeError(`backend must be 'auto', 'iommufd' or 'type1', not ${String(choice)}`);
    // auto: iommufd where the kernel has it and exposes VFIO device cdevs, else the legacy container.
    const iommufdUsable = fs.existsSync('/dev/iommu') && fs.existsSync('/dev/vfio/devices');
    const kind: BackendKind = choice === 'auto' ? (options.iommufd || iommufdUsable ? 'iommufd' : 'type1') : choice;
    let backend: IommuBackend;
    if (kind === 'iommufd') {
      const shared = options.iommufd;
      const ctx = shared ?? new IommufdContext();
      try {
        backend = new IommufdBackend(ctx);
      } catch (err) {
        if (!shared) ctx.close();
        throw err;
      }
    } else {
      backend = new Type1Backend();
    }
    return new AddressSpace(backend, options.sysfs ?? '/sys');
  }

  get kind(): BackendKind {
    return this.backend.kind;
  }

  private live(): IommuBackend {
    if (this.closed) throw new VfioStateError('the address space is closed', 'ERR_VFIO_CLOSED');
    return this.backend;
  }

  /** Opens the PCI device at `bdf` (bound to vfio-pci) and attaches it here. */
  openDevice(bdf: string): VfioPciDevice {
    const info = readPciDevice(bdf, this.sysfs);
    this.live();
    if ([...this.devices].some((d) => d.bdf === info.bdf)) {
      throw new VfioStateError(`${info.bdf} is already open in this address space`, 'ERR_VFIO_BUSY');
    }
    if (info.driver !== 'vfio-pci') {
      throw new VfioStateError(`${info.bdf} is bound to ${info.driver ?? 'no driver'}, not vfio-pci: echo vfio-pci > /sys/bus/pci/devices/${info.bdf}/driver_override, unbind it, then echo ${info.bdf} > /sys/bus/pci/drivers_probe`, 'ERR_VFIO_NOT_BOUND');
    }
    const nativeDevice = this.live().attachDevice(info);
    const device = new VfioPciDevice(nativeDevice, info, this);
    this.devices.add(device);
    this.refreshRanges();
    return device;
  }

  /** @internal */
  deviceClosed(device: VfioPciDevice): void {
    this.devices.delete(device);
    if (!this.closed) this.backend.detachDevice(device.native);
  }

  /** The usable IOVA ranges now. */
  iovaRanges(): IovaRange[] {
    return this.live().iovaRanges();
  }

  private iovas(): IovaAllocator {
    // IOVA 0 is never handed out: to many devices and drivers an address of 0 means "none".
    if (!this.allocator) this.allocator = new IovaAllocator(this.live().iovaRanges(), { pageSize: PAGE_SIZE, reserved: [{ start: 0n, last: PAGE_SIZE - 1n }] });
    return this.allocator;
  }

  /** Newly attached devices can bring reserved regions: keep the allocator off them. */
  private refreshRanges(): void {
    if (!this.allocator) return;
    let next = 0n;
    for (const r of [...this.live().iovaRanges()].sort((a, b) => (a.start < b.start ? -1 : 1))) {
      if (r.start > next) this.allocator.reserve(next, r.start - 1n);
      next = r.last + 1n;
    }
    if (next < IOVA_SPACE_END) this.allocator.reserve(next, IOVA_SPACE_END - 1n);
  }

  private allocate(length: bigint, o: AllocationOptions): bigint {
    const align = o.align === undefined ? undefined : toBigInt(o.align, 'align');
    const limit = o.limit === undefined ? undefined : toBigInt(o.limit, 'limit');
    const at = o.iova === undefined ? undefined : toBigInt(o.iova, 'iova');
    if (at !== undefined) checkRangeFits(at, length, 'iova');
    return this.iovas().allocate(length, { align, limit, at });
  }

  /** @internal a window gives its IOVAs back */
  freeIova(iova: bigint, length: bigint, window?: IovaWindow): void {
    if (window) this.windows.delete(window);
    if (!this.closed) this.iovas().free(iova, length);
  }

  /** Maps (a slice of) a DMA buffer at an IOVA the allocator picks (or `iova`). */
  map(buffer: DmaBuffer, options: MapOptions = {}): DmaMapping {
    if (!(buffer instanceof DmaBuffer)) throw new TypeError('buffer must be a DmaBuffer');
    const offset = toBigInt(options.offset ?? 0, 'offset');
    checkAligned(offset, PAGE_SIZE, 'offset');
    const length = options.length === undefined ? buffer.length - offset : toBigInt(options.length, 'length');
    if (length === 0n) throw new RangeError('length must not be 0');
    checkAligned(length, PAGE_SIZE, 'length');
    if (offset + length > buffer.length) throw new RangeError(`[${hex(offset)}, +${hex(length)}) is outside the ${buffer.length}-byte buffer`);
    const backend = this.live();
    if (buffer.closed) throw new VfioStateError('DmaBuffer is closed', 'ERR_VFIO_CLOSED');
    const iova = this.allocate(length, options);
    try {
      backend.map(buffer.native, offset, length, iova, access(options.access), false);
    } catch (err) {
      this.iovas().free(iova, length);
      throw err;
    }
    return this.track(new DmaMapping(this.releaser(true), iova, length, [buffer], { iova, length }));
  }

  /** Step 1: reserves `length` bytes of IOVA (page multiple), mapping nothing. */
  reserve(length: number | bigint, options: AllocationOptions = {}): IovaWindow {
    const len = toBigInt(length, 'length');
    if (len === 0n) throw new RangeError('length must not be 0');
    checkAligned(len, PAGE_SIZE, 'length');
    this.live();
    const window = new IovaWindow(this, this.allocate(len, options), len);
    this.windows.add(window);
    return window;
  }

  /** One step: reserves a window of the list's size, links the list, releases the window with the mapping. */
  mapPhysList(list: PhysList, options: AllocationOptions & { access?: Partial<Access> } = {}): DmaMapping {
    const window = this.reserve(list.span, options);
    try {
      const m = window.link(list, 0, options);
      m.once('unmapped', () => window.release());
      return m;
    } catch (err) {
      window.release();
      throw err;
    }
  }

  /** @internal step 2, for IovaWindow.link */
  linkAt(iova: bigint, list: PhysList, acc: Access, onUnmap: (m: DmaMapping) => void): DmaMapping {
    const backend = this.live();
    if (list.kind === 'encrypted') {
      throw new VfioStateError('encrypted memory cannot be mapped: userspace has no backing for it (no CC-capable memory source through VFIO yet)', 'ERR_VFIO_ENCRYPTED');
    }
    const flat: FlatFragments = [];
    const holds: object[] = [];
    const head = list.headOffset;
    const frags = list.fragments;
    const last = frags.length - 1;
    for (let i = 0; i <= last; i++) {
      const f = frags[i];
      // The IOMMU maps whole pages: the first fragment from its page start, the last to its page end.
      // PhysList checked that every fragment lies in its memory; only that rounded-up end can pass it.
      const start = i === 0 ? f.offset - head : f.offset;
      const length = i === last ? ((f.offset + f.length + PAGE_SIZE - 1n) / PAGE_SIZE) * PAGE_SIZE - start : i === 0 ? f.length + head : f.length;
      if (list.kind === 'cpu') {
        const c = f as CpuFragment;
        if (c.buffer.closed) throw new VfioStateError(`fragment ${i}: DmaBuffer is closed`, 'ERR_VFIO_CLOSED');
        if (i === last && start + length > c.buffer.length) throw new RangeError(`fragment ${i} ends inside its buffer's last page, which the buffer does not fully hold`);
        flat.push(c.buffer.native, start, length, c.asFile);
        holds.push(c.buffer);
      } else {
        const provider = list.provider!;
        if (i === last && start + length > provider.size) throw new RangeError(`fragment ${i} runs past the provider's region`);
        const s = provider.fragmentSource(backend.kind, start, length);
        flat.push(s.source, s.offset, s.length, s.asFile);
        holds.push(s.source);
      }
    }
    const span = list.span;
    backend.mapList(iova, flat, acc);
    const release = this.releaser(false, onUnmap);
    const mapping = new DmaMapping(release, iova + head, list.length, holds, { iova, length: span });
    if (list.kind === 'p2p' && backend.kind === 'iommufd') {
      const provider = list.provider!;
      const onRevoke = (): void => {
        mapping.revoked = true;
        mapping.emit('revoked');
      };
      provider.on('revoked', onRevoke);
      mapping.once('unmapped', () => provider.off('revoked', onRevoke));
    }
    return this.track(mapping);
  }

  private track(m: DmaMapping): DmaMapping {
    this.mappings.add(m);
    return m;
  }

  private releaser(freesIova: boolean, onUnmap?: (m: DmaMapping) => void): { release(m: DmaMapping, inKernel: boolean): void } {
    return {
      release: (m: DmaMapping, inKernel: boolean): void => {
        if (inKernel && !this.closed) this.backend.unmap(m.pages.iova, m.pages.length);
        this.mappings.delete(m);
        if (freesIova && !this.closed) this.iovas().free(m.pages.iova, m.pages.length);
        onUnmap?.(m);
        m.emit('unmapped');
      },
    };
  }

  /**
   * Unmaps whatever whole mappings lie in [iova, iova + length) directly in
   * the kernel (the kernels refuse to cut a mapping in two). Returns the
   * bytes unmapped. Mappings made by this object that it covers become inactive.
   */
  unmapRange(iova: number | bigint, length: number | bigint): bigint {
    const start = toBigInt(iova, 'iova');
    const len = toBigInt(length, 'length');
    checkRangeFits(start, len, 'range');
    const done = this.live().unmap(start, len);
    for (const m of [...this.mappings]) {
      if (m.pages.iova >= start && m.pages.iova + m.pages.length <= start + len) m.forget();
    }
    return done;
  }

  /** IOMMU_IOAS_COPY: `mapping` (of another address space on the same iommufd) mapped here too, without pinning again. */
  copyFrom(source: AddressSpace, mapping: DmaMapping, options: AllocationOptions & { access?: Partial<Access> } = {}): DmaMapping {
    const dst = this.live();
    if (!(dst instanceof IommufdBackend) || !(source.backend instanceof IommufdBackend)) {
      throw new VfioStateError('IOMMU_IOAS_COPY is an iommufd operation: both address spaces must be iommufd', 'ERR_VFIO_BACKEND');
    }
    if (!mapping.active) throw new VfioStateError('the source mapping is unmapped', 'ERR_VFIO_CLOSED');
    const { length } = mapping.pages;
    const iova = this.allocate(length, options);
    try {
      dst.copyFrom(source.backend, mapping.pages.iova, length, iova, access(options.access));
    } catch (err) {
      this.iovas().free(iova, length);
      throw err;
    }
    return this.track(new DmaMapping(this.releaser(true), iova + (mapping.iova - mapping.pages.iova), mapping.length, mapping.holds, { iova, length }));
  }

  /** Live mappings made through this object. */
  liveMappings(): DmaMapping[] {
    return [...this.mappings];
  }

  /** IOVA ranges whose memory the native layer keeps alive (for tests of lifetime). */
  pinCount(): number {
    return this.backend.pinCount();
  }

  /**
   * Unmaps everything (a device still running faults instead of reaching
   * memory), closes the devices, then the backend. Idempotent; it always
   * gets to the end, and throws the first error it met, if any.
   */
  close(): void {
    if (this.closed) return;
    const errors: unknown[] = [];
    const attempt = (fn: () => void): void => {
      try {
        fn();
      } catch (err) {
        errors.push(err);
      }
    };
    for (const w of [...this.windows]) attempt(() => w.release());
    for (const m of [...this.mappings]) attempt(() => m.unmap());
    for (const m of [...this.mappings]) m.forget();
    for (const d of [...this.devices]) attempt(() => d.close());
    this.closed = true;
    attempt(() => this.backend.close());
    if (errors.length > 0) throw errors[0];
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
