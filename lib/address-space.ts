/**
 * A DMA address space: the IOVAs devices attached to it use. One class over
 * both IOMMU backends (iommufd IOAS, type1 container); the mapping
 * bookkeeping is written once here: IOVA allocation, the table of live
 * mappings, the two-step phys_list mapping (reserve a window, link lists
 * into it), and closing children before the parent.
 */
import * as fs from 'node:fs';
import { VfioPciDevice } from './device';
import { DmaMapping } from './dma-mapping';
import { explainMapError, MappedMemory, VfioStateError } from './errors';
import { Access, BackendKind, FlatFragments, IommuBackend } from './iommu/backend';
import { IommufdBackend, IommufdContext } from './iommu/iommufd';
import { Type1Backend, Type1Choice } from './iommu/type1';
import { IovaAllocator, IovaAllocatorError, IovaRange, IOVA_FAST_END, IOVA_SPACE_END } from './iova-allocator';
import { DmaBuffer, PAGE_SIZE } from './memory';
import { PhysList, CpuFragment } from './phys-list';
import { readPciDevice } from './sysfs';
import { checkInstance, checkOptions, checkRangeFits, hex, kindOf, toBigInt } from './validate';

/**
 * Fragments `first`..`last` of `list` for an error's message: their
 * indexes, and where each of the two ends lies in its memory.
 */
function describeFragments(list: PhysList, first: number, last: number): string {
  const frags = list.fragments;
  const where = (i: number): string => {
    const f = frags[i];
    if (f === undefined) return `fragment ${i}`;
    const memory = list.kind === 'cpu' ? 'its DmaBuffer' : `region ${list.provider?.regionIndex ?? '?'}`;
    return `fragment ${i} (offset ${hex(f.offset)}, ${f.length} bytes of ${memory})`;
  };
  const which = first === last ? where(first) : `fragments ${first}..${last}, one run in memory, from ${where(first)} to ${where(last)}`;
  return `linking ${which} of the ${frags.length}-fragment list failed; nothing of the list stays mapped`;
}

export { DmaMapping } from './dma-mapping';
export type { DmaMappingEvent } from './dma-mapping';

/**
 * Which IOMMU backend {@link AddressSpace.open} uses: `'iommufd'` (an IOAS in
 * /dev/iommu; devices through their VFIO cdev), `'type1'` (a /dev/vfio/vfio
 * container; devices through their IOMMU group), or `'auto'`: iommufd when the
 * kernel has both /dev/iommu and /dev/vfio/devices, else type1.
 */
export type BackendChoice = 'auto' | BackendKind;

/**
 * Options of {@link AddressSpace.open}. The five IOMMU modes of the kernel's
 * own VFIO selftests, as options:
 *
 * | selftests' mode          | options                                                   |
 * | ------------------------ | --------------------------------------------------------- |
 * | `iommufd`                | `{ backend: 'iommufd' }`                                  |
 * | `vfio_type1v2_iommu`     | `{ backend: 'type1', type1: 'v2' }`                       |
 * | `vfio_type1_iommu`       | `{ backend: 'type1', type1: 'v1' }`                       |
 * | `iommufd_compat_type1v2` | `{ backend: 'type1', container: '/dev/iommu', type1: 'v2' }` |
 * | `iommufd_compat_type1`   | `{ backend: 'type1', container: '/dev/iommu', type1: 'v1' }` |
 */
export interface AddressSpaceOptions {
  /**
   * The backend: 'auto' (default) takes iommufd when /dev/iommu and
   * /dev/vfio/devices exist, else type1; `iommufd` implies iommufd, and
   * `container` or `type1` imply type1.
   */
  backend?: BackendChoice;
  /**
   * An open /dev/iommu to allocate the IOAS in, shared with other address
   * spaces (needed for {@link AddressSpace.copyFrom}); implies the iommufd
   * backend under 'auto'. The address space borrows it: closing the address
   * space destroys its IOAS only, and the context's owner closes the context
   * (which it refuses while address spaces use it). Default: a fresh
   * /dev/iommu of this address space's own, closed with it.
   */
  iommufd?: IommufdContext;
  /**
   * type1 only: the device node opened as the container.
   * `'/dev/vfio/vfio'` (default) is VFIO's own container with the
   * vfio_iommu_type1 driver (on a kernel built with
   * CONFIG_IOMMUFD_VFIO_CONTAINER, iommufd serves that node too).
   * `'/dev/iommu'` is iommufd's compatibility container: iommufd emulating
   * the type1 ioctls over an IOAS of its own (Linux 6.2 and later with
   * CONFIG_IOMMUFD); devices still join through their IOMMU groups. Another
   * path names such a node elsewhere (a container's /dev).
   */
  container?: string;
  /**
   * type1 only: which type1 interface. `'auto'` (default): v2 when the
   * container offers it, else v1. `'v2'` (VFIO_TYPE1v2_IOMMU): an unmap
   * must cover whole mappings, or the kernel refuses it. `'v1'`
   * (VFIO_TYPE1_IOMMU, the original): the kernel does not refuse an unmap
   * that cuts a mapping: VFIO's driver unmaps whole every mapping that starts
   * in the range (and nothing when the range starts inside one), iommufd's
   * compatibility container cuts mappings at the range's ends and therefore
   * maps everything with 4 KiB IOMMU pages, never large ones; use v1 only for
   * what needs it. An explicit 'v1' or 'v2' the container does not offer fails
   * at open with `ERR_VFIO_IOMMU_TYPE`.
   */
  type1?: Type1Choice;
  /** Where sysfs is mounted (default '/sys'); another root lets tests use a fake tree. */
  sysfs?: string;
}

/**
 * Where the address space's allocator may put an IOVA range (for
 * {@link AddressSpace.map}, {@link AddressSpace.reserve},
 * {@link AddressSpace.mapPhysList} and {@link AddressSpace.copyFrom}). With
 * none, the lowest free range that fits: first fit by address, from the IOVA
 * ranges the kernel reports minus reserved regions, never IOVA 0.
 */
export interface AllocationOptions {
  /**
   * Alignment of the IOVA in bytes: a power of two, at least {@link PAGE_SIZE}
   * (the default). A 2 MiB alignment for hugetlb memory lets the IOMMU use
   * large pages.
   */
  align?: number | bigint;
  /**
   * The range must end at or below this IOVA (an exclusive bound): the
   * device's DMA mask, e.g. `1n << 28n` for edu's 28-bit DMA engine or
   * `1n << 32n` for a 32-bit device. Default 2^64.
   */
  limit?: number | bigint;
  /**
   * An exact IOVA instead of the allocator's choice: page aligned and wholly
   * in free IOVA space (an {@link IovaAllocatorError} with code EEXIST when it
   * overlaps an allocation, EADDRNOTAVAIL when it is a hole, a reserved region
   * or above `limit`).
   */
  iova?: number | bigint;
}

/**
 * Options of {@link AddressSpace.map}: which slice of the buffer, where in
 * IOVA space, and what the device may do with it.
 */
export interface MapOptions extends AllocationOptions {
  /** Byte offset in the buffer of the first mapped byte: a multiple of the page size. Default 0. */
  offset?: number | bigint;
  /** Bytes to map from `offset`: a non-zero multiple of the page size. Default: to the end of the buffer. */
  length?: number | bigint;
  /**
   * What the device may do through the mapping; each of `read` and `write`
   * defaults to true. A DMA the mapping does not allow faults in the IOMMU.
   */
  access?: Partial<Access>;
}

const DEFAULT_ACCESS: Access = { read: true, write: true };

function access(a?: Partial<Access>): Access {
  return { ...DEFAULT_ACCESS, ...a };
}

/** The page size as a number, for the hot paths' arithmetic. */
const PAGE = Number(PAGE_SIZE);
/** Single-page IOVAs an address space keeps for its next single-page maps (see AddressSpace.recycled). */
const RECYCLE_DEPTH = 64;

/**
 * A size, offset, alignment or limit as a number, from a number or a bigint;
 * TypeError/RangeError naming it otherwise. Values from 2^53 up are clipped
 * to 2^53 when `clip` (a limit: the allocator never goes past 2^53 anyway).
 */
function num(value: unknown, name: string, clip = false): number {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value >= 0) return value;
    if (clip && value === IOVA_FAST_END) return value;
    throw new RangeError(`${name} must be a non-negative safe integer, got ${value}`);
  }
  const big = toBigInt(value, name);
  if (big <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(big);
  if (clip) return IOVA_FAST_END;
  throw new RangeError(`${name} (${hex(big)}) is past 2^53, beyond any IOVA this library hands out`);
}

/** `value` must be a multiple of the page size. */
function pageAligned(value: number, name: string): void {
  if (value % PAGE !== 0) throw new RangeError(`${name} (${hex(value)}) must be aligned to ${hex(PAGE)}`);
}

/** The kAccess* bits of the native hot path: read 1, write 2. */
function accessBits(a: Partial<Access> | undefined): number {
  if (a === undefined) return 3;
  const full = access(a);
  return (full.read ? 1 : 0) | (full.write ? 2 : 0);
}

/**
 * Step 1 of the two-step mapping: an IOVA window reserved in the address
 * space with nothing mapped, made by {@link AddressSpace.reserve}. Step 2,
 * {@link IovaWindow.link}, maps phys_lists into it; several lists may be
 * linked at different offsets, and a list unlinked and linked again reuses
 * the same IOVAs. The IOVAs stay reserved until {@link IovaWindow.release}
 * (or the address space closes).
 */
export class IovaWindow implements Disposable {
  private links = new Set<DmaMapping>();
  private released = false;
  /** @internal the first IOVA as a number */
  readonly start: number;
  /** @internal bytes as a number */
  readonly size: number;

  /** @internal */
  constructor(
    private readonly space: AddressSpace,
    /** The first IOVA of the window (page aligned). */
    readonly iova: bigint,
    /** Bytes of IOVA space the window spans (a page multiple). */
    readonly length: bigint,
  ) {
    this.start = Number(iova);
    this.size = Number(length);
  }

  /**
   * Maps every fragment of `list` at consecutive IOVAs from `iova + offset`
   * in ONE native call. If a fragment fails, the ones before it are unmapped
   * before the error is thrown: the window is as it was.
   *
   * @param list - The fragments; CPU lists map DmaBuffers (memfd fragments
   *   with `asFile` through IOMMU_IOAS_MAP_FILE), P2P lists map a peer's BAR
   *   through their {@link P2PProvider}.
   * @param offset - Where in the window, in bytes from its start: a page
   *   multiple. The list takes `list.span` bytes from there.
   * @param options - `access`: what the device may do (read and write by default).
   * @returns The mapping: its `iova` is `window.iova + offset + list.headOffset`
   *   (the first fragment's offset in its page), its `length` is `list.length`.
   *   Unmapping it unlinks the list and leaves the IOVAs reserved in the window.
   * @throws RangeError when `offset` is not page aligned, or the list does not
   *   fit in the window from `offset`.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` when the window was
   *   released, the address space closed, or a fragment's DmaBuffer or provider
   *   is closed; `ERR_VFIO_ENCRYPTED` for an encrypted list.
   * @throws {@link VfioError} from the map ioctls (`IOMMU_IOAS_MAP`,
   *   `IOMMU_IOAS_MAP_FILE`, `VFIO_IOMMU_MAP_DMA`, `VFIO_DEVICE_FEATURE` for a
   *   dma-buf export), e.g. ENOMEM when pinning exceeds RLIMIT_MEMLOCK.
   */
  link(list: PhysList, offset: number | bigint = 0, options: { access?: Partial<Access> } = {}): DmaMapping {
    if (this.released) throw new VfioStateError('the IOVA window is released', 'ERR_VFIO_CLOSED');
    checkInstance(list, PhysList, 'list');
    checkOptions(options);
    const off = offset === 0 ? 0 : num(offset, 'offset');
    pageAligned(off, 'offset');
    const span = list.spanBytes;
    if (off + span > this.size) {
      throw new RangeError(`the list needs ${hex(span)} bytes of IOVA at ${hex(off)}, the window has ${hex(this.size)}`);
    }
    const mapping = this.space.linkAt(this.start + off, list, options.access, this.unlinked);
    this.links.add(mapping);
    return mapping;
  }

  /**
   * Unmaps every mapping still linked into the window (they emit
   * `'unmapped'`) and gives the IOVAs back to the allocator. Idempotent.
   *
   * @throws {@link VfioError} when the kernel refuses an unmap.
   */
  release(): void {
    if (this.released) return;
    this.released = true; // first: unlinking below may call back here
    for (const m of [...this.links]) m.unmap();
    this.space.freeIova(this.start, this.size, this);
  }

  /** A linked mapping left the IOMMU. */
  private readonly unlinked = (m: DmaMapping): void => {
    this.links.delete(m);
  };

  /** {@link IovaWindow.release}, for `using`. */
  [Symbol.dispose](): void {
    this.release();
  }
}

/**
 * One DMA address space: the IOVAs its devices use, over either IOMMU
 * backend (an iommufd IOAS, or a type1 container). Devices opened through it
 * ({@link AddressSpace.openDevice}) are attached to it, and DMA from them
 * reaches exactly what is mapped here.
 *
 * It allocates IOVAs itself, from the ranges the kernel reports minus
 * reserved regions, and always maps at those fixed IOVAs. Everything made
 * through it (devices, mappings, IOVA windows) is closed with it, children
 * first: {@link AddressSpace.close}.
 *
 * Under type1 the container has no IOMMU until its first device is attached:
 * open a device before mapping or reserving IOVAs (iommufd has no such order).
 *
 * @example
 * ```ts
 * using space = AddressSpace.open();
 * using buf = DmaBuffer.allocate(4096);
 * const m = space.map(buf, { limit: 1n << 32n }); // a 32-bit device
 * // program the device with m.iova
 * ```
 */
export class AddressSpace implements Disposable {
  private allocator?: IovaAllocator;
  /**
   * IOVAs of single-page mappings just unmapped, still allocated in the
   * allocator and handed straight to the next single-page map without
   * constraints: a 4 KiB map + unmap makes no allocator call. This is the
   * kernel IOVA allocator's per-CPU magazine in front of its shared cache.
   * Everything else that asks the allocator ({@link AddressSpace.iovas})
   * first gives these back, so no IOVA is held from an exact request, a
   * reservation or an error message.
   */
  private readonly recycled = new Float64Array(RECYCLE_DEPTH);
  private recycledCount = 0;
  /** The newest live mapping: the head of their list (linked through the mappings themselves). */
  private newest: DmaMapping | null = null;
  /** map()'s checked request, reused. */
  private readonly request = { offset: 0, length: 0, bits: 3 };
  private windows = new Set<IovaWindow>();
  private devices = new Set<VfioPciDevice>();
  private closed = false;

  private constructor(
    /** @internal the backend's operations, for tests and benchmarks of the native calls alone */
    readonly backend: IommuBackend,
    private readonly sysfs: string,
  ) {}

  /**
   * Opens an address space: an IOAS in /dev/iommu (iommufd) or a type1
   * container (/dev/vfio/vfio, or iommufd's compatibility container
   * /dev/iommu). Nothing is mapped yet; under type1 the IOMMU type is set
   * when the first device is opened.
   *
   * @example
   * ```ts
   * AddressSpace.open(); // iommufd where the kernel has it, else type1
   * AddressSpace.open({ backend: 'type1', type1: 'v2' }); // VFIO's container, VFIO_TYPE1v2_IOMMU or fail
   * AddressSpace.open({ container: '/dev/iommu' }); // type1 ioctls served by iommufd
   * ```
   *
   * @throws TypeError (before any system call) when `options` is not an
   *   object, `backend` is not 'auto', 'iommufd' or 'type1', `container` is
   *   not a non-empty string, `type1` is not 'auto', 'v1' or 'v2', or the
   *   options contradict each other (`iommufd` with backend 'type1';
   *   `container` or `type1` with backend 'iommufd' or with `iommufd`).
   * @throws {@link VfioError} when the backend cannot be opened: code ENOENT
   *   (syscall `open`) without /dev/iommu or /dev/vfio/vfio (or the
   *   `container` given), EACCES without permission on them, or an ioctl's
   *   error (`IOMMU_IOAS_ALLOC`, `VFIO_CHECK_EXTENSION`).
   * @throws {@link VfioStateError} `ERR_VFIO_API_VERSION` when the container
   *   speaks another VFIO API version, `ERR_VFIO_IOMMU_TYPE` when it does not
   *   offer the `type1` interface asked for.
   */
  static open(options: AddressSpaceOptions = {}): AddressSpace {
    if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
    const choice = options.backend ?? 'auto';
    if (!['auto', 'iommufd', 'type1'].includes(choice))
      throw new TypeError(
        `backend must be 'auto', 'iommufd' or 'type1', not ${typeof choice === 'string' ? `'${choice}'` : kindOf(choice)}`,
      );
    const wantsType1 = options.container !== undefined || options.type1 !== undefined;
    if (options.sysfs !== undefined && typeof options.sysfs !== 'string')
      throw new TypeError(`sysfs must be a string (where sysfs is mounted), not ${kindOf(options.sysfs)}`);
    if (options.iommufd !== undefined && !(options.iommufd instanceof IommufdContext))
      throw new TypeError('iommufd must be an IommufdContext');
    if (options.iommufd !== undefined && (choice === 'type1' || wantsType1))
      throw new TypeError("iommufd (an IommufdContext for an IOAS) belongs to the iommufd backend, not type1's container");
    if (wantsType1 && choice === 'iommufd')
      throw new TypeError(`${options.container !== undefined ? 'container' : 'type1'} applies to the type1 backend, not 'iommufd'`);
    // auto: iommufd where the kernel has it and exposes VFIO device cdevs, else the legacy container.
    const iommufdUsable = !wantsType1 && fs.existsSync('/dev/iommu') && fs.existsSync('/dev/vfio/devices');
    const kind: BackendKind = choice === 'auto' ? (options.iommufd || iommufdUsable ? 'iommufd' : 'type1') : choice;
    let backend: IommuBackend;
    if (kind === 'iommufd') {
      const shared = options.iommufd;
      const ctx = shared ?? new IommufdContext();
      try {
        backend = new IommufdBackend(ctx, !shared); // a context of its own closes with it; a shared one is its owner's
      } catch (err) {
        if (!shared) ctx.close();
        throw err;
      }
    } else {
      backend = new Type1Backend({ container: options.container, type1: options.type1 });
    }
    return new AddressSpace(backend, options.sysfs ?? '/sys');
  }

  /** The backend in use: 'iommufd' or 'type1'. */
  get kind(): BackendKind {
    return this.backend.kind;
  }

  private live(): IommuBackend {
    if (this.closed) throw new VfioStateError('the address space is closed', 'ERR_VFIO_CLOSED');
    return this.backend;
  }

  /**
   * Opens the PCI device at `bdf`, which must be bound to vfio-pci, and
   * attaches it to this address space: under iommufd through its VFIO cdev
   * (/dev/vfio/devices/vfioN), under type1 through its IOMMU group. From then
   * on its DMA reaches what is mapped here. Attaching can shrink the usable
   * IOVA ranges (a device's reserved regions); the allocator follows.
   *
   * @param bdf - The PCI address, 'DDDD:BB:SS.F' or 'BB:SS.F' (e.g. '0000:00:03.0').
   * @returns The device; it closes with the address space, or earlier by its own close().
   * @throws TypeError or RangeError when `bdf` is not a PCI address.
   * @throws Error with code ENOENT when sysfs has no such device.
   * @throws {@link VfioStateError} `ERR_VFIO_NOT_BOUND` when it is not bound to
   *   vfio-pci (the message says how to bind it), `ERR_VFIO_BUSY` when it is
   *   already open here, `ERR_VFIO_NO_CDEV` under iommufd when the kernel has
   *   no VFIO cdev for it, `ERR_VFIO_CLOSED` when the address space is closed.
   * @throws {@link VfioError} from opening and attaching: EBUSY when another
   *   process holds the group or device, EPERM (`VFIO_GROUP_SET_CONTAINER`) when
   *   the IOMMU group is not viable, `VFIO_DEVICE_BIND_IOMMUFD`/`VFIO_DEVICE_ATTACH_IOMMUFD_PT` errors.
   * @throws {@link IovaAllocatorError} EBUSY when the device reserves IOVAs
   *   (iommufd: the MSI window) that this address space already handed out
   *   (mapped or reserved before any device was opened).
   *
   * Opening is all or nothing: when a step fails after the kernel attached
   * the device, the device is detached and closed before the error is
   * thrown, so it can be opened again at once, here or by another process.
   */
  openDevice(bdf: string): VfioPciDevice {
    const info = readPciDevice(bdf, this.sysfs);
    this.live();
    if ([...this.devices].some((d) => d.bdf === info.bdf)) {
      throw new VfioStateError(`${info.bdf} is already open in this address space`, 'ERR_VFIO_BUSY');
    }
    if (info.driver !== 'vfio-pci') {
      throw new VfioStateError(
        `${info.bdf} is bound to ${info.driver ?? 'no driver'}, not vfio-pci: echo vfio-pci > /sys/bus/pci/devices/${info.bdf}/driver_override, unbind it, then echo ${info.bdf} > /sys/bus/pci/drivers_probe`,
        'ERR_VFIO_NOT_BOUND',
      );
    }
    const nativeDevice = this.live().attachDevice(info);
    const device = new VfioPciDevice(nativeDevice, info, this);
    this.devices.add(device);
    try {
      this.refreshRanges();
    } catch (err) {
      // All or nothing: detached and closed, the device is free again, here and for other processes.
      try {
        device.close();
      } catch {
        // the error that stopped the open is the one to report
      }
      if (!(err instanceof IovaAllocatorError && err.code === 'EBUSY')) throw err;
      throw new IovaAllocatorError(
        'EBUSY',
        `${info.bdf} reserves IOVAs (such as the MSI window) that this address space has already handed out, so it was not opened: ${err.message}; open devices before mapping or reserving IOVAs there`,
      );
    }
    return device;
  }

  /** @internal */
  deviceClosed(device: VfioPciDevice): void {
    this.devices.delete(device);
    if (!this.closed) this.backend.detachDevice(device.native);
  }

  /**
   * The IOVA ranges devices can use now, as the kernel reports them
   * (inclusive `start`..`last`); they shrink as devices with reserved regions
   * (such as the x86 MSI window) attach.
   *
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` when the address space is
   *   closed; `ERR_VFIO_NO_DEVICE` under type1 before a device is opened.
   */
  iovaRanges(): IovaRange[] {
    return this.live().iovaRanges();
  }

  private iovas(): IovaAllocator {
    if (this.recycledCount > 0) this.returnRecycled();
    // IOVA 0 is never handed out: to many devices and drivers an address of 0 means "none".
    if (!this.allocator)
      this.allocator = new IovaAllocator(this.live().iovaRanges(), {
        pageSize: PAGE_SIZE,
        reserved: [{ start: 0n, last: PAGE_SIZE - 1n }],
      });
    return this.allocator;
  }

  /** Gives the recycled single-page IOVAs back to the allocator. */
  private returnRecycled(): void {
    const allocator = this.allocator!;
    while (this.recycledCount > 0) allocator.freeFast(this.recycled[--this.recycledCount], PAGE);
  }

  /** Newly attached devices can bring reserved regions: keep the allocator off them. */
  private refreshRanges(): void {
    if (!this.allocator) return;
    if (this.recycledCount > 0) this.returnRecycled(); // held IOVAs would make reserve() see a busy range
    let next = 0n;
    for (const r of [...this.live().iovaRanges()].sort((a, b) => (a.start < b.start ? -1 : 1))) {
      if (r.start > next) this.allocator.reserve(next, r.start - 1n);
      next = r.last + 1n;
    }
    if (next < IOVA_SPACE_END) this.allocator.reserve(next, IOVA_SPACE_END - 1n);
  }

  /**
   * IOVAs for `length` bytes (a page multiple): the allocator's O(1) number
   * path for the common cases, its checking bigint path for an exact `iova`
   * and to say why nothing fits.
   */
  private allocateIova(length: number, o: AllocationOptions | undefined): number {
    if (o === undefined || (o.iova === undefined && o.align === undefined && o.limit === undefined)) {
      if (length === PAGE && this.recycledCount > 0) return this.recycled[--this.recycledCount];
      const iova = (this.allocator ?? this.iovas()).allocFast(length, PAGE, IOVA_FAST_END);
      if (iova >= 0) return iova;
      const allocator = this.iovas(); // with the recycled IOVAs back, once more; then say what there is
      const again = allocator.allocFast(length, PAGE, IOVA_FAST_END);
      if (again < 0) throw allocator.noSpaceError(length, PAGE, IOVA_FAST_END);
      return again;
    }
    const allocator = this.iovas();
    const align = o.align === undefined ? PAGE : num(o.align, 'align');
    const limit = o.limit === undefined ? IOVA_FAST_END : num(o.limit, 'limit', true);
    if (o.iova !== undefined) {
      const at = num(o.iova, 'iova');
      if (at % align !== 0) throw new RangeError(`iova ${hex(at)} is not aligned to ${hex(align)}`);
      return allocator.allocAt(at, length, limit);
    }
    const iova = allocator.allocFast(length, align, limit);
    // -1: nothing fits, even after the allocator returned its cached ranges; say what there is.
    if (iova < 0) throw allocator.noSpaceError(length, align, limit);
    return iova;
  }

  /** @internal a window gives its IOVAs back */
  freeIova(iova: number, length: number, window?: IovaWindow): void {
    if (window) this.windows.delete(window);
    if (!this.closed) this.iovas().freeFast(iova, length);
  }

  /**
   * Maps a DMA buffer, or a page-aligned slice of it, into the IOMMU at an
   * IOVA the allocator picks (or exactly at `options.iova`), pinning its pages.
   * The mapping holds the buffer: closing the buffer does not free memory a
   * device can still reach.
   *
   * @param buffer - The memory to map.
   * @param options - The slice (`offset`, `length`, page multiples), the
   *   IOVA constraints (`align`, `limit`, `iova`) and the device's `access`.
   * @returns The mapping: `iova` is where the slice starts for the device.
   * @throws TypeError when `buffer` is not a DmaBuffer or a number is of the wrong type.
   * @throws RangeError when the slice is empty, not page aligned, or outside the buffer.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` when the buffer or the address space is closed;
   *   `ERR_VFIO_NO_DEVICE` under type1 before a device is opened.
   * @throws {@link IovaNoSpaceError} (code ENOSPC) when no free IOVA range fits
   *   below `limit`; {@link IovaAllocatorError} EEXIST or EADDRNOTAVAIL for an
   *   `iova` that cannot be had.
   * @throws {@link VfioError} from the map ioctl (`IOMMU_IOAS_MAP` or
   *   `VFIO_IOMMU_MAP_DMA`): ENOMEM when pinning exceeds RLIMIT_MEMLOCK.
   */
  map(buffer: DmaBuffer, options?: MapOptions): DmaMapping {
    const fast = this.live().fastPath();
    const req = this.mapRequest(buffer, options);
    const iova = this.allocateIova(req.length, options);
    const args = fast.args;
    args[0] = buffer.handle;
    args[1] = req.offset;
    args[2] = req.length;
    args[3] = iova;
    args[4] = req.bits;
    let pin: number;
    try {
      fast.mapUser();
      pin = args[5];
    } catch (err) {
      this.allocator!.freeFast(iova, req.length);
      throw explainMapError(err, 'cpu');
    }
    return this.track(new DmaMapping(this, pin, iova, req.length, 0, req.length, true, buffer));
  }

  /**
   * {@link AddressSpace.map} off the event loop: the map ioctl, which pins
   * every page (long for a large buffer: tens of milliseconds per GiB), runs
   * on a thread of libuv's pool. The buffer's memory is held from the call
   * on, so closing the buffer meanwhile frees nothing a device could reach;
   * closing the address space meanwhile makes the promise reject with
   * `ERR_VFIO_CLOSED` (the mapping went with the IOAS).
   *
   * @throws (rejects) What {@link AddressSpace.map} throws.
   */
  async mapAsync(buffer: DmaBuffer, options?: MapOptions): Promise<DmaMapping> {
    const fast = this.live().fastPath();
    const { offset, length, bits } = this.mapRequest(buffer, options);
    const iova = this.allocateIova(length, options);
    let pin: number;
    try {
      pin = await fast.mapUserAsync(buffer.handle, offset, length, iova, bits);
    } catch (err) {
      if (!this.closed) this.allocator!.freeFast(iova, length);
      throw explainMapError(err, 'cpu');
    }
    return this.track(new DmaMapping(this, pin, iova, length, 0, length, true, buffer));
  }

  /** What map() and mapAsync() map, checked: into one reused object (no allocation per map). */
  private mapRequest(buffer: DmaBuffer, options: MapOptions | undefined): { offset: number; length: number; bits: number } {
    if (!(buffer instanceof DmaBuffer)) throw new TypeError('buffer must be a DmaBuffer');
    const req = this.request;
    req.offset = 0;
    req.length = buffer.size;
    req.bits = 3;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
      if (options.offset !== undefined) req.offset = num(options.offset, 'offset');
      pageAligned(req.offset, 'offset');
      req.length = options.length === undefined ? buffer.size - req.offset : num(options.length, 'length');
      req.bits = accessBits(options.access);
    }
    const { offset, length } = req;
    if (length === 0) throw new RangeError('length must not be 0');
    if (length < 0 || offset + length > buffer.size)
      throw new RangeError(`[${hex(offset)}, +${hex(length)}) is outside the ${buffer.size}-byte buffer`);
    pageAligned(length, 'length');
    if (buffer.closed) throw new VfioStateError('DmaBuffer is closed', 'ERR_VFIO_CLOSED');
    return req;
  }

  /**
   * Step 1 of the two-step mapping: reserves `length` bytes of IOVA space,
   * mapping nothing; {@link IovaWindow.link} maps phys_lists into it.
   *
   * @param length - Bytes of IOVA: a non-zero multiple of the page size.
   * @param options - `align`, `limit`, or an exact `iova`.
   * @throws RangeError when `length` is 0 or not a page multiple.
   * @throws {@link IovaNoSpaceError} (ENOSPC) when no free range fits.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` when the address space is closed;
   *   `ERR_VFIO_NO_DEVICE` under type1 before a device is opened.
   */
  reserve(length: number | bigint, options: AllocationOptions = {}): IovaWindow {
    checkOptions(options);
    const len = num(length, 'length');
    if (len === 0) throw new RangeError('length must not be 0');
    pageAligned(len, 'length');
    this.live();
    const window = new IovaWindow(this, BigInt(this.allocateIova(len, options)), BigInt(len));
    this.windows.add(window);
    return window;
  }

  /**
   * Both steps at once: reserves a window of `list.span` bytes, links the
   * list into it, and releases the window when the mapping is unmapped.
   *
   * @returns The mapping: `iova` is the first byte of the list (inside its
   *   first page at `list.headOffset`), contiguous for `list.length` bytes.
   * @throws Everything {@link AddressSpace.reserve} and {@link IovaWindow.link}
   *   throw; on failure nothing stays reserved or mapped.
   */
  mapPhysList(list: PhysList, options: AllocationOptions & { access?: Partial<Access> } = {}): DmaMapping {
    checkInstance(list, PhysList, 'list');
    checkOptions(options);
    const window = this.reserve(list.span, options);
    try {
      const m = window.link(list, 0, options);
      const unlinked = m.onUnmapped;
      m.onUnmapped = (x) => {
        unlinked?.(x);
        window.release();
      };
      return m;
    } catch (err) {
      window.release();
      throw err;
    }
  }

  /** @internal step 2, for IovaWindow.link: maps `list` from `iova` (a page-aligned number) */
  linkAt(iova: number, list: PhysList, acc: Partial<Access> | undefined, onUnmap: (m: DmaMapping) => void): DmaMapping {
    const backend = this.live();
    if (list.kind === 'encrypted') {
      throw new VfioStateError(
        'encrypted memory cannot be mapped: userspace has no backing for it (no CC-capable memory source through VFIO yet)',
        'ERR_VFIO_ENCRYPTED',
      );
    }
    let mapping: DmaMapping;
    const packed = list.kind === 'cpu' ? list.packedCpu() : null;
    if (packed !== null) {
      // The hot path: the list's (handle, offset, length) triples, packed once per list, in one native call.
      const fast = backend.fastPath();
      const args = fast.args;
      args[0] = iova;
      args[1] = accessBits(acc);
      args[2] = list.fragments.length;
      let pin: number;
      try {
        pin = fast.link(packed);
      } catch (err) {
        // The native side found a closed buffer's handle stale: say which fragment, as a VfioStateError.
        if ((err as { code?: unknown }).code === 'ERR_VFIO_CLOSED') list.checkOpen();
        // The native side names the failed run of fragments in the error's detail: "(fragment 3..5 of 8; ...)".
        const m = /fragment (\d+)(?:\.\.(\d+))?/.exec((err as { detail?: unknown }).detail as string);
        throw explainMapError(err, 'cpu', m ? describeFragments(list, Number(m[1]), Number(m[2] ?? m[1])) : undefined);
      }
      mapping = new DmaMapping(this, pin, iova, list.spanBytes, list.headBytes, list.lengthBytes, false, list);
    } else {
      mapping = this.linkSlow(backend, iova, list, access(acc));
    }
    const own = mapping.onUnmapped;
    mapping.onUnmapped =
      own === null
        ? onUnmap
        : (m) => {
            own(m);
            onUnmap(m);
          };
    return this.track(mapping);
  }

  /** Lists the hot path does not take: memfds mapped as files, and peer memory. */
  private linkSlow(backend: IommuBackend, iova: number, list: PhysList, acc: Access): DmaMapping {
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
      const length =
        i === last ? ((f.offset + f.length + PAGE_SIZE - 1n) / PAGE_SIZE) * PAGE_SIZE - start : i === 0 ? f.length + head : f.length;
      if (list.kind === 'cpu') {
        const c = f as CpuFragment;
        if (c.buffer.closed) throw new VfioStateError(`fragment ${i}: DmaBuffer is closed`, 'ERR_VFIO_CLOSED');
        if (i === last && start + length > c.buffer.length)
          throw new RangeError(`fragment ${i} ends inside its buffer's last page, which the buffer does not fully hold`);
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
    let pin: number;
    try {
      pin = backend.mapList(BigInt(iova), flat, acc);
    } catch (err) {
      // the native side names the failed run of fragments (fragmentFirst..fragmentLast)
      const { fragmentFirst: first, fragmentLast: last } = err as { fragmentFirst?: unknown; fragmentLast?: unknown };
      const where = typeof first === 'number' && typeof last === 'number' ? describeFragments(list, first, last) : undefined;
      const memory: MappedMemory = list.kind === 'cpu' ? 'cpu' : backend.kind === 'type1' ? 'bar' : 'dma-buf';
      throw explainMapError(err, memory, where);
    }
    const mapping = new DmaMapping(this, pin, iova, list.spanBytes, list.headBytes, list.lengthBytes, false, holds);
    if (list.kind === 'p2p' && backend.kind === 'iommufd') {
      const provider = list.provider!;
      const onRevoke = (): void => mapping.revoke();
      provider.on('revoked', onRevoke);
      mapping.onUnmapped = () => provider.off('revoked', onRevoke);
    }
    return mapping;
  }

  /** Puts a new mapping at the head of the live list. */
  private track(m: DmaMapping): DmaMapping {
    const first = this.newest;
    m.next = first;
    if (first !== null) first.prev = m;
    this.newest = m;
    return m;
  }

  /** @internal a mapping leaves: unmaps it in the kernel (`inKernel`), unlinks it, frees its IOVAs */
  release(m: DmaMapping, inKernel: boolean): void {
    if (inKernel && !this.closed) {
      const fast = this.backend.fastPath();
      const args = fast.args;
      args[0] = m.pin;
      args[1] = m.pageIova;
      args[2] = m.pageLength;
      fast.unmap();
    }
    const prev = m.prev;
    const next = m.next;
    if (prev === null) this.newest = next;
    else prev.next = next;
    if (next !== null) next.prev = prev;
    m.prev = null;
    m.next = null;
    if (m.ownsIova && !this.closed) {
      if (m.pageLength === PAGE && this.recycledCount < RECYCLE_DEPTH) this.recycled[this.recycledCount++] = m.pageIova;
      else this.allocator!.freeFast(m.pageIova, m.pageLength);
    }
    m.released();
  }

  /**
   * Unmaps whatever whole mappings lie in [iova, iova + length) directly in
   * the kernel (the kernels refuse to cut a mapping in two). Mappings made by
   * this object that it covers become inactive and emit `'unmapped'`; IOVAs
   * they allocated are given back.
   *
   * @returns The bytes the kernel unmapped.
   * @throws RangeError when the range runs past 2^64.
   * @throws {@link VfioError} when the kernel refuses (ENOENT or EINVAL: the
   *   range would cut a mapping).
   */
  unmapRange(iova: number | bigint, length: number | bigint): bigint {
    const start = toBigInt(iova, 'iova');
    const len = toBigInt(length, 'length');
    checkRangeFits(start, len, 'range');
    const done = this.live().unmap(start, len);
    const from = Number(start);
    const to = Number(start + len);
    for (let m = this.newest; m !== null;) {
      const next = m.next;
      if (m.pageIova >= from && m.pageIova + m.pageLength <= to) m.forget();
      m = next;
    }
    return done;
  }

  /**
   * IOMMU_IOAS_COPY: the pages of `mapping`, a mapping of another address
   * space of the same {@link IommufdContext}, mapped here too at an IOVA of
   * this address space, without pinning them again. The new mapping holds
   * what the source holds.
   *
   * @param source - The address space `mapping` belongs to.
   * @param mapping - A live mapping of `source`.
   * @param options - IOVA constraints and access of the copy.
   * @throws {@link VfioStateError} `ERR_VFIO_BACKEND` unless both address
   *   spaces are iommufd, `ERR_VFIO_CONTEXT` unless they share one
   *   IommufdContext, `ERR_VFIO_CLOSED` when `mapping` is unmapped.
   * @throws {@link IovaNoSpaceError} when no IOVA range fits here.
   * @throws {@link VfioError} from `ioctl(IOMMU_IOAS_COPY)`.
   */
  copyFrom(source: AddressSpace, mapping: DmaMapping, options: AllocationOptions & { access?: Partial<Access> } = {}): DmaMapping {
    checkInstance(source, AddressSpace, 'source');
    checkInstance(mapping, DmaMapping, 'mapping');
    checkOptions(options);
    const dst = this.live();
    if (!(dst instanceof IommufdBackend) || !(source.backend instanceof IommufdBackend)) {
      throw new VfioStateError('IOMMU_IOAS_COPY is an iommufd operation: both address spaces must be iommufd', 'ERR_VFIO_BACKEND');
    }
    if (!mapping.active) throw new VfioStateError('the source mapping is unmapped', 'ERR_VFIO_CLOSED');
    const length = mapping.pageLength;
    const iova = this.allocateIova(length, options);
    let pin: number;
    try {
      pin = dst.copyFrom(source.backend, BigInt(mapping.pageIova), BigInt(length), BigInt(iova), access(options.access));
    } catch (err) {
      this.iovas().freeFast(iova, length);
      throw err;
    }
    return this.track(new DmaMapping(this, pin, iova, length, mapping.head, mapping.size, true, mapping.holds));
  }

  /** The mappings made through this address space that are still in the IOMMU (a snapshot). */
  liveMappings(): DmaMapping[] {
    const out: DmaMapping[] = [];
    for (let m = this.newest; m !== null; m = m.next) out.push(m);
    return out.reverse();
  }

  /**
   * How many mapped ranges the native layer keeps memory alive for: the
   * count of native holds, for tests of memory lifetime (it drops as
   * mappings are unmapped).
   */
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
    for (const m of this.liveMappings()) attempt(() => m.unmap());
    for (const m of this.liveMappings()) m.forget();
    for (const d of [...this.devices]) attempt(() => d.close());
    this.closed = true;
    attempt(() => this.backend.close());
    if (errors.length > 0) throw errors[0];
  }

  /** {@link AddressSpace.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
