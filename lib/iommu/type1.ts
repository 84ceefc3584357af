/**
 * The legacy backend: a type1 container, and devices through their IOMMU
 * groups. The container is VFIO's own (/dev/vfio/vfio, the vfio_iommu_type1
 * driver) or iommufd's compatibility container (/dev/iommu opened as a
 * container: iommufd emulating type1 over an IOAS of its own); the type1
 * interface is v2 (VFIO_TYPE1v2_IOMMU) or v1 (VFIO_TYPE1_IOMMU). The IOMMU
 * type is set when the first group joins (the kernel needs one).
 */
import * as fs from 'node:fs';
import { native, NativeContainer, NativeDevice, NativeFastPath, NativeGroup, FragmentSource, IovaRange } from '../native';
import { PciDeviceInfo } from '../sysfs';
import { VfioStateError } from '../errors';
import { kindOf } from '../validate';
import { Access, FlatFragments, IommuBackend, packFragments } from './backend';
import { V1Mappings } from './v1-mappings';

/** The VFIO API version every container speaks (VFIO_GET_API_VERSION). */
export const VFIO_API_VERSION = 0;
/** The type1 IOMMU, v1 interface (VFIO_SET_IOMMU, VFIO_CHECK_EXTENSION). */
export const VFIO_TYPE1_IOMMU = 1;
/** The type1 IOMMU, v2 interface: unmaps must cover whole mappings. */
export const VFIO_TYPE1v2_IOMMU = 3;
const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;

/** VFIO's own container, with the vfio_iommu_type1 driver (or iommufd's, under CONFIG_IOMMUFD_VFIO_CONTAINER). */
export const VFIO_CONTAINER_PATH = '/dev/vfio/vfio';
/** iommufd's device node: opened as a container, it is iommufd's type1 compatibility container. */
export const IOMMUFD_CONTAINER_PATH = '/dev/iommu';

/**
 * The two type1 interfaces. `'v2'` (VFIO_TYPE1v2_IOMMU): an unmap must
 * cover whole mappings or the kernel refuses it. `'v1'` (VFIO_TYPE1_IOMMU,
 * the original): VFIO's driver unmaps every mapping that starts inside the
 * range, whole, and nothing when the range starts inside a mapping;
 * iommufd's compatibility container cuts mappings at the range's ends, and
 * so maps everything with PAGE_SIZE IOMMU pages (a large IOMMU page could
 * not be cut).
 */
export type Type1Flavour = 'v1' | 'v2';

/** Which type1 interface to ask for: one of {@link Type1Flavour}, or `'auto'` (v2 when offered, else v1). */
export type Type1Choice = 'auto' | Type1Flavour;

/** How a {@link Type1Backend} opens its container (the same names as AddressSpace.open's options). */
export interface Type1Options {
  /** The container's device node: {@link VFIO_CONTAINER_PATH} (default) or {@link IOMMUFD_CONTAINER_PATH}. */
  container?: string;
  /** The type1 interface: 'auto' (default), 'v1' or 'v2'. */
  type1?: Type1Choice;
}

const TYPE_OF: Record<Type1Flavour, number> = { v1: VFIO_TYPE1_IOMMU, v2: VFIO_TYPE1v2_IOMMU };
const NAME_OF: Record<Type1Flavour, string> = { v1: 'VFIO_TYPE1_IOMMU', v2: 'VFIO_TYPE1v2_IOMMU' };

/** A value for an error message. */
function describe(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  return value === undefined || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint'
    ? String(value)
    : kindOf(value);
}

function dmaMapFlags(access: Access): number {
  return (access.read ? VFIO_DMA_MAP_FLAG_READ : 0) | (access.write ? VFIO_DMA_MAP_FLAG_WRITE : 0);
}

/** The type1 backend of an {@link AddressSpace}: one container. */
export class Type1Backend implements IommuBackend {
  readonly kind = 'type1' as const;
  /** @internal */
  readonly container: NativeContainer;
  /** The container's device node, as opened. */
  readonly containerPath: string;
  private readonly choice: Type1Choice;
  private groups = new Map<number, { group: NativeGroup; devices: Set<NativeDevice> }>();
  private iommuType?: number;
  private closed = false;
  private fast: NativeFastPath;
  /** Under v1: the ranges mapped, so that an unmap cutting one is refused here (the kernel would not). */
  private v1?: V1Mappings;

  /**
   * Opens the container and checks its API version; with an explicit
   * `type1`, also that the container offers that interface, so that a
   * missing one fails here rather than when the first device is opened.
   *
   * @throws TypeError when `container` is not a non-empty string or `type1`
   *   is not 'auto', 'v1' or 'v2' (before any system call).
   * @throws {@link VfioError} from `open` (ENOENT: no such node, e.g. no
   *   /dev/iommu on a kernel without CONFIG_IOMMUFD) or the ioctls.
   * @throws {@link VfioStateError} `ERR_VFIO_API_VERSION` for another API
   *   version, `ERR_VFIO_IOMMU_TYPE` when the container does not offer the
   *   asked-for interface.
   */
  constructor(options: Type1Options = {}) {
    const path = options.container ?? VFIO_CONTAINER_PATH;
    if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) {
      throw new TypeError(`container must be a device node path (a non-empty string), not ${describe(path)}`);
    }
    const choice = options.type1 ?? 'auto';
    if (choice !== 'auto' && choice !== 'v1' && choice !== 'v2') {
      throw new TypeError(`type1 must be 'auto', 'v1' or 'v2', not ${describe(choice)}`);
    }
    this.containerPath = path;
    this.choice = choice;
    this.container = new native.Container(path);
    try {
      const version = this.container.apiVersion();
      if (version !== VFIO_API_VERSION) {
        throw new VfioStateError(`${path}: VFIO API version ${version}, expected ${VFIO_API_VERSION}`, 'ERR_VFIO_API_VERSION');
      }
      if (choice !== 'auto' && this.container.checkExtension(TYPE_OF[choice]) <= 0) {
        throw new VfioStateError(
          `${path} does not offer ${NAME_OF[choice]} (type1 '${choice}'): ask for type1 'auto' or the other interface`,
          'ERR_VFIO_IOMMU_TYPE',
        );
      }
      this.fast = this.container.fastPath();
    } catch (err) {
      this.container.close();
      throw err;
    }
  }

  /** The container's hot paths, once it has an IOMMU (after the first device). */
  fastPath(): NativeFastPath {
    if (this.iommuType === undefined) this.requireIommu();
    return this.fast;
  }

  /** The IOMMU type set on the container once a device is attached: VFIO_TYPE1v2_IOMMU or VFIO_TYPE1_IOMMU. */
  get type(): number | undefined {
    return this.iommuType;
  }

  /** The type1 interface in use once a device is attached ('v2' or 'v1'); undefined before. */
  get flavour(): Type1Flavour | undefined {
    if (this.iommuType === undefined) return undefined;
    return this.iommuType === VFIO_TYPE1v2_IOMMU ? 'v2' : 'v1';
  }

  private get live(): NativeContainer {
    if (this.closed) throw new VfioStateError('the address space is closed', 'ERR_VFIO_CLOSED');
    return this.container;
  }

  private requireIommu(): void {
    if (this.iommuType === undefined) {
      throw new VfioStateError(
        'a type1 container has no IOMMU until a device is attached: open a device in this address space first',
        'ERR_VFIO_NO_DEVICE',
      );
    }
  }

  iovaRanges(): IovaRange[] {
    this.requireIommu();
    const info = this.live.iommuInfo();
    return info.ranges ?? [{ start: 0n, last: (1n << 64n) - 1n }];
  }

  /** VFIO_IOMMU_GET_INFO: flags, page sizes, IOVA ranges, DMA mappings still available. */
  info(): ReturnType<NativeContainer['iommuInfo']> {
    this.requireIommu();
    return this.live.iommuInfo();
  }

  attachDevice(info: PciDeviceInfo): NativeDevice {
    if (info.iommuGroup === undefined) {
      throw new VfioStateError(`${info.bdf} has no IOMMU group: is the IOMMU on (intel_iommu=on)?`, 'ERR_VFIO_NO_GROUP');
    }
    let entry = this.groups.get(info.iommuGroup);
    if (!entry) {
      const path = fs.existsSync(`/dev/vfio/${info.iommuGroup}`) ? `/dev/vfio/${info.iommuGroup}` : `/dev/vfio/noiommu-${info.iommuGroup}`;
      const group = new native.Group(path);
      try {
        if (!(group.status() & VFIO_GROUP_FLAGS_VIABLE)) {
          throw new VfioStateError(
            `IOMMU group ${info.iommuGroup} is not viable: bind every device in /sys/kernel/iommu_groups/${info.iommuGroup}/devices to vfio-pci`,
            'ERR_VFIO_GROUP_NOT_VIABLE',
          );
        }
        group.setContainer(this.live);
        if (this.iommuType === undefined) {
          // 'auto' asks once the group is in: the answer then is the driver's that will serve it.
          const type =
            this.choice !== 'auto'
              ? TYPE_OF[this.choice]
              : this.container.checkExtension(VFIO_TYPE1v2_IOMMU) > 0
                ? VFIO_TYPE1v2_IOMMU
                : VFIO_TYPE1_IOMMU;
          this.container.setIommu(type);
          this.iommuType = type;
          if (type === VFIO_TYPE1_IOMMU) {
            this.v1 = new V1Mappings();
            this.fast = this.v1.wrap(this.fast);
          }
        }
      } catch (err) {
        group.close();
        throw err;
      }
      entry = { group, devices: new Set() };
      this.groups.set(info.iommuGroup, entry);
    }
    const dev = entry.group.getDevice(info.bdf);
    entry.devices.add(dev);
    return dev;
  }

  /**
   * Groups stay in the container until the address space closes: the last
   * group leaving would take the IOMMU, and every mapping, with it.
   */
  detachDevice(device: NativeDevice): void {
    for (const entry of this.groups.values()) entry.devices.delete(device);
  }

  map(source: FragmentSource, offset: bigint, length: bigint, iova: bigint, access: Access): void {
    this.requireIommu();
    this.live.mapDma(source as Parameters<NativeContainer['mapDma']>[0], offset, length, iova, dmaMapFlags(access));
    this.v1?.add(iova, length);
  }

  mapList(iova: bigint, fragments: FlatFragments, access: Access): number {
    this.requireIommu();
    const pin = this.live.mapList(iova, packFragments(fragments), dmaMapFlags(access));
    if (this.v1) {
      let length = 0n;
      for (let i = 2; i < fragments.length; i += 4) length += fragments[i] as bigint;
      this.v1.add(iova, length, pin);
    }
    return pin;
  }

  /**
   * Unmaps the whole mappings inside the range. Under v2 the kernel refuses
   * a range that cuts a mapping (EINVAL from VFIO's driver, ENOENT from
   * iommufd's compatibility container); under v1 it would not, so this
   * refuses it first: VfioStateError `ERR_VFIO_CUTS_MAPPING`.
   */
  unmap(iova: bigint, length: bigint): bigint {
    const live = this.live;
    this.v1?.checkWhole(iova, length);
    const done = live.unmapDma(iova, length, 0);
    this.v1?.removeInside(iova, length);
    return done;
  }

  pinCount(): number {
    return this.container.pinCount();
  }

  close(): void {
    if (this.closed) return;
    for (const { group, devices } of this.groups.values()) {
      for (const d of devices) d.close();
      group.close();
    }
    this.groups.clear();
    this.container.close();
    this.closed = true;
  }
}
