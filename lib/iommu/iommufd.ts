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
import { VfioStateError } from '../errors';
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
 * One open /dev/iommu (an iommufd). Several address spaces, each an IOAS in
 * it, may share it (pass it as {@link AddressSpaceOptions.iommufd}), which
 * {@link AddressSpace.copyFrom} (IOMMU_IOAS_COPY) needs. It is closed when
 * the last address space made in it closes, or by close().
 */
export class IommufdContext {
  /** @internal */
  readonly native: NativeIommufd;
  private users = 0;

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
    return this.native.option(option, IOMMU_OPTION_OP_GET, objectId, 0n);
  }

  /**
   * Sets an iommufd option (ioctl IOMMU_OPTION, OP_SET); see getOption for the options.
   *
   * @throws {@link VfioError} (syscall `ioctl(IOMMU_OPTION)`): EPERM when setting
   *   RLIMIT_MODE without CAP_SYS_RESOURCE, EINVAL for a value the option does not take.
   */
  setOption(option: number, value: bigint, objectId = 0): void {
    this.native.option(option, IOMMU_OPTION_OP_SET, objectId, value);
  }

  /** @internal */
  acquire(): void {
    this.users++;
  }

  /** @internal */
  release(): void {
    if (--this.users <= 0) this.close();
  }

  /**
   * Closes the iommufd now: the kernel destroys every IOAS in it, with their
   * mappings, and the address spaces made in it stop working. Idempotent.
   */
  close(): void {
    this.native.close();
  }
}

/** The iommufd backend of an {@link AddressSpace}: one IOAS of an {@link IommufdContext}. */
export class IommufdBackend implements IommuBackend {
  readonly kind = 'iommufd' as const;
  /** The IOAS's object ID in the iommufd. */
  readonly ioas: number;
  private readonly fast: NativeFastPath;
  private devices = new Set<NativeDevice>();
  private closed = false;

  constructor(readonly context: IommufdContext) {
    context.acquire();
    try {
      this.ioas = context.native.ioasAlloc();
      this.fast = context.native.fastPath(this.ioas);
    } catch (err) {
      context.release();
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
    const dev = new native.Device(`/dev/vfio/devices/${info.vfioCdev}`);
    try {
      dev.bindIommufd(this.fd);
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

  close(): void {
    if (this.closed) return;
    for (const d of this.devices) d.close();
    this.devices.clear();
    try {
      this.context.native.destroy(this.ioas);
    } catch {
      // the context may be closed already: the kernel destroyed the IOAS with it
    }
    this.closed = true;
    this.context.release();
  }
}
