/**
 * The legacy backend: a /dev/vfio/vfio container with the type1 IOMMU
 * (type1v2 when the kernel has it), and devices through their groups.
 * The IOMMU type is set when the first group joins (the kernel needs one).
 */
import * as fs from 'node:fs';
import { native, NativeContainer, NativeDevice, NativeFastPath, NativeGroup, FragmentSource, IovaRange } from '../native';
import { PciDeviceInfo } from '../sysfs';
import { VfioStateError } from '../errors';
import { Access, FlatFragments, IommuBackend, packFragments } from './backend';

export const VFIO_API_VERSION = 0;
export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_TYPE1v2_IOMMU = 3;
const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;

function dmaMapFlags(access: Access): number {
  return (access.read ? VFIO_DMA_MAP_FLAG_READ : 0) | (access.write ? VFIO_DMA_MAP_FLAG_WRITE : 0);
}

export class Type1Backend implements IommuBackend {
  readonly kind = 'type1' as const;
  /** @internal */
  readonly container: NativeContainer;
  private groups = new Map<number, { group: NativeGroup; devices: Set<NativeDevice> }>();
  private iommuType?: number;
  private closed = false;
  private readonly fast: NativeFastPath;

  constructor(path = '/dev/vfio/vfio') {
    this.container = new native.Container(path);
    const version = this.container.apiVersion();
    if (version !== VFIO_API_VERSION) {
      this.container.close();
      throw new VfioStateError(`VFIO API version ${version}, expected ${VFIO_API_VERSION}`, 'ERR_VFIO_API_VERSION');
    }
    this.fast = this.container.fastPath();
  }

  /** The container's hot paths, once it has an IOMMU (after the first device). */
  fastPath(): NativeFastPath {
    if (this.iommuType === undefined) this.requireIommu();
    return this.fast;
  }

  /** The type1 variant in use once a device is attached (VFIO_TYPE1v2_IOMMU preferred). */
  get type(): number | undefined {
    return this.iommuType;
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
          const type = this.container.checkExtension(VFIO_TYPE1v2_IOMMU) ? VFIO_TYPE1v2_IOMMU : VFIO_TYPE1_IOMMU;
          this.container.setIommu(type);
          this.iommuType = type;
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
  }

  mapList(iova: bigint, fragments: FlatFragments, access: Access): number {
    this.requireIommu();
    return this.live.mapList(iova, packFragments(fragments), dmaMapFlags(access));
  }

  unmap(iova: bigint, length: bigint): bigint {
    return this.live.unmapDma(iova, length, 0);
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
