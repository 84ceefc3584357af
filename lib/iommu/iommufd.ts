/**
 * The iommufd backend: an IOAS in /dev/iommu; devices through their VFIO
 * cdev (/dev/vfio/devices/vfioN), bound to the iommufd and attached to the IOAS.
 *
 * The library always maps at IOVAs its own allocator chose
 * (IOMMU_IOAS_MAP_FIXED_IOVA): the kernel never picks an address, so it
 * cannot hand out one the allocator also hands out. (IOMMU_IOAS_ALLOW_IOVAS
 * would be the other way; it also constrains which devices may attach, which
 * fixed IOVAs do not.)
 */
import { native, NativeDevice, NativeFastPath, NativeIommufd, FragmentSource, IovaRange } from '../native';
import { PciDeviceInfo } from '../sysfs';
import { VfioError, VfioStateError } from '../errors';
import { Access, FlatFragments, IommuBackend, packFragments } from './backend';

// enum iommufd_ioas_map_flags
const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
const IOMMU_IOAS_MAP_READABLE = 1 << 2;

// enum iommufd_option / iommufd_option_ops
/** How pinned pages count against RLIMIT_MEMLOCK: 0 (default) per user, 1 per process. Global: object ID 0. */
export const IOMMU_OPTION_RLIMIT_MODE = 0;
/** 1 (default): contiguous pages may be combined into large IOMMU pages; 0: everything at PAGE_SIZE. Per IOAS. */
export const IOMMU_OPTION_HUGE_PAGES = 1;
/** IOMMU_OPTION operation: set the value. */
export const IOMMU_OPTION_OP_SET = 0;
/** IOMMU_OPTION operation: read the value. */
export const IOMMU_OPTION_OP_GET = 1;

/** IOMMU_IOAS_MAP's READABLE and WRITEABLE flags for an access. */
export function ioasMapFlags(access: Access): number {
  return (access.read ? IOMMU_IOAS_MAP_READABLE : 0) | (access.write ? IOMMU_IOAS_MAP_WRITEABLE : 0);
}

/**
 * VFIO_DEVICE_BIND_IOMMUFD on a freshly opened cdev fails with EINVAL when
 * the device is already open through another cdev file (vfio_df_open: a cdev
 * has no way to share a device) and with EBUSY when its group is open
 * through a type1 container: both mean the device is in use elsewhere, here
 * or in another process. Either becomes EBUSY saying so; any other error is
 * the kernel's own.
 */
function inUse(err: unknown, bdf: string, cdev: string): unknown {
  if (!(err instanceof VfioError) || (err.code !== 'EINVAL' && err.code !== 'EBUSY')) return err;
  return new VfioError(`EBUSY: ${bdf} is in use, ${err.syscall} ${cdev} (the kernel answered ${err.code})`, {
    code: 'EBUSY',
    errno: -16,
    syscall: err.syscall,
    detail: cdev,
  });
}

/**
 * One open /dev/iommu (an iommufd). Several address spaces, each an IOAS in
 * it, may share it (pass it as {@link AddressSpaceOptions.iommufd}), which
 * {@link AddressSpace.copyFrom} (IOMMU_IOAS_COPY) needs.
 *
 * Ownership: whoever made the context closes it (close() or `using`);
 * address spaces only borrow it. An address space opened in it destroys its
 * own IOAS when it closes and leaves the context open for others. The
 * context refuses to close while address spaces still use it: close them
 * first (with `using`, declare the context before the address spaces, so it
 * is disposed after them). An address space opened without a context makes
 * one of its own and closes it.
 *
 * @example
 * ```ts
 * using ctx = new IommufdContext();
 * using a = AddressSpace.open({ iommufd: ctx });
 * using b = AddressSpace.open({ iommufd: ctx });
 * const copy = b.copyFrom(a, a.map(buf));
 * ```
 */
export class IommufdContext implements Disposable {
  /** @internal */
  readonly native: NativeIommufd;
  private readonly users = new Set<IommufdBackend>();
  private closed = false;

  /**
   * Opens the iommufd.
   *
   * @param path - The iommufd device node (default '/dev/iommu').
   * @throws {@link VfioError} code ENOENT (syscall `open`) when the kernel has
   *   no iommufd (CONFIG_IOMMUFD), EACCES without permission on it.
   */
  constructor(path = '/dev/iommu') {
    this.native = new native.Iommufd(path);
  }

  /**
   * Reads an iommufd option (ioctl IOMMU_OPTION, OP_GET).
   *
   * @param option - 0 IOMMU_OPTION_RLIMIT_MODE (global: how pinned memory is
   *   accounted, 0 per user, 1 per process) or 1 IOMMU_OPTION_HUGE_PAGES (per
   *   IOAS: 1 lets contiguous pages become large IOMMU pages, 0 maps everything
   *   at PAGE_SIZE).
   * @param objectId - 0 for a global option, the IOAS ID for a per-IOAS one.
   * @returns The option's value.
   * @throws {@link VfioError} (syscall `ioctl(IOMMU_OPTION)`): EOPNOTSUPP for an
   *   unknown option, ENOENT for a wrong object ID.
   */
  getOption(option: number, objectId = 0): bigint {
    return this.live().option(option, IOMMU_OPTION_OP_GET, objectId, 0n);
  }

  /**
   * Sets an iommufd option (ioctl IOMMU_OPTION, OP_SET); see getOption for the options.
   *
   * @throws {@link VfioError} (syscall `ioctl(IOMMU_OPTION)`): EPERM when setting
   *   RLIMIT_MODE without CAP_SYS_RESOURCE, EINVAL for a value the option does not take.
   */
  setOption(option: number, value: bigint, objectId = 0): void {
    this.live().option(option, IOMMU_OPTION_OP_SET, objectId, value);
  }

  /** Whether close() closed it. */
  get isClosed(): boolean {
    return this.closed;
  }

  private live(): NativeIommufd {
    if (this.closed) throw new VfioStateError('the IommufdContext is closed', 'ERR_VFIO_CLOSED');
    return this.native;
  }

  /** @internal an address space's IOAS borrows the context until it gives it back */
  borrow(user: IommufdBackend): NativeIommufd {
    const fd = this.live();
    this.users.add(user);
    return fd;
  }

  /** @internal the IOAS is destroyed: the context no longer counts it as a user */
  giveBack(user: IommufdBackend): void {
    this.users.delete(user);
  }

  /**
   * Closes the iommufd. Idempotent.
   *
   * @throws {@link VfioStateError} `ERR_VFIO_BUSY` (closing nothing) while
   *   address spaces opened in it are open: close them first.
   */
  close(): void {
    if (this.closed) return;
    const n = this.users.size;
    if (n > 0) {
      throw new VfioStateError(
        `the IommufdContext is in use by ${n} address space${n === 1 ? '' : 's'}: close ${n === 1 ? 'it' : 'them'} first`,
        'ERR_VFIO_BUSY',
      );
    }
    this.closed = true;
    this.native.close();
  }

  /** {@link IommufdContext.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * The iommufd backend of an {@link AddressSpace}: one IOAS of an
 * {@link IommufdContext}, which it borrows (or owns, when the address space
 * made the context for itself).
 */
export class IommufdBackend implements IommuBackend {
  readonly kind = 'iommufd' as const;
  /** The IOAS's object ID in the iommufd. */
  readonly ioas: number;
  private readonly fast: NativeFastPath;
  private devices = new Set<NativeDevice>();
  private closed = false;

  /**
   * Allocates an IOAS in `context`.
   *
   * @param context - The iommufd.
   * @param ownsContext - Close the context with the IOAS (it was made for this address space alone).
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` when the context is closed.
   * @throws {@link VfioError} from `ioctl(IOMMU_IOAS_ALLOC)`.
   */
  constructor(
    readonly context: IommufdContext,
    private readonly ownsContext = false,
  ) {
    const fd = context.borrow(this);
    try {
      this.ioas = fd.ioasAlloc();
      this.fast = fd.fastPath(this.ioas);
    } catch (err) {
      context.giveBack(this);
      throw err;
    }
  }

  /** The IOAS's hot paths. */
  fastPath(): NativeFastPath {
    return this.fast;
  }

  private get fd(): NativeIommufd {
    if (this.closed) throw new VfioStateError('the address space is closed', 'ERR_VFIO_CLOSED');
    return this.context.native;
  }

  iovaRanges(): IovaRange[] {
    return this.fd.iovaRanges(this.ioas).ranges;
  }

  attachDevice(info: PciDeviceInfo): NativeDevice {
    if (!info.vfioCdev) {
      throw new VfioStateError(
        `${info.bdf} has no VFIO cdev (/sys/bus/pci/devices/${info.bdf}/vfio-dev): the kernel lacks VFIO_DEVICE_CDEV, or the device is not bound to vfio-pci; use the type1 backend`,
        'ERR_VFIO_NO_CDEV',
      );
    }
    const cdev = `/dev/vfio/devices/${info.vfioCdev}`;
    const dev = new native.Device(cdev);
    try {
      try {
        dev.bindIommufd(this.fd);
      } catch (err) {
        throw inUse(err, info.bdf, cdev);
      }
      dev.attachPt(this.ioas);
    } catch (err) {
      dev.close();
      throw err;
    }
    this.devices.add(dev);
    return dev;
  }

  detachDevice(device: NativeDevice): void {
    this.devices.delete(device);
  }

  map(source: FragmentSource, offset: bigint, length: bigint, iova: bigint, access: Access, asFile: boolean): void {
    this.fd.map(this.ioas, source, offset, length, iova, ioasMapFlags(access), asFile);
  }

  mapList(iova: bigint, fragments: FlatFragments, access: Access): number {
    return this.fd.mapList(this.ioas, iova, packFragments(fragments), ioasMapFlags(access));
  }

  unmap(iova: bigint, length: bigint): bigint {
    return this.fd.unmap(this.ioas, iova, length);
  }

  /** IOMMU_IOAS_COPY from another IOAS of the same iommufd; no second pinning. */
  copyFrom(source: IommufdBackend, srcIova: bigint, length: bigint, dstIova: bigint, access: Access): number {
    if (source.context !== this.context) {
      throw new VfioStateError('IOMMU_IOAS_COPY works between address spaces of one IommufdContext', 'ERR_VFIO_CONTEXT');
    }
    return this.fd.copy(this.ioas, source.ioas, srcIova, length, dstIova, ioasMapFlags(access));
  }

  pinCount(): number {
    return this.context.native.pinCount();
  }

  /**
   * Closes the devices still attached and destroys the IOAS, then gives the
   * context back (closing it when it owns it). Idempotent.
   *
   * @throws {@link VfioError} from `ioctl(IOMMU_DESTROY)` (the context is given back all the same).
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const d of this.devices) d.close();
    this.devices.clear();
    try {
      this.context.native.destroy(this.ioas);
    } finally {
      this.context.giveBack(this);
      if (this.ownsContext) this.context.close();
    }
  }
}
