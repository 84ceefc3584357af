/**
 * The table of operations every IOMMU backend provides. The mapping
 * bookkeeping (IOVA allocation, the mapping table, phys_list linking) is
 * written once above it, in AddressSpace.
 */
import { FragmentSource, IovaRange, NativeDevice, NativeFastPath, PackedFragments } from '../native';
import { PciDeviceInfo } from '../sysfs';

/**
 * The two IOMMU backends: `'iommufd'` (an IOAS in /dev/iommu, devices bound
 * through their VFIO cdev; Linux 6.2 and later with CONFIG_IOMMUFD) and
 * `'type1'` (the legacy /dev/vfio/vfio container with the type1 IOMMU,
 * devices through their IOMMU group; any kernel with VFIO).
 */
export type BackendKind = 'iommufd' | 'type1';

/** What a device may do through a mapping (the IOMMU's read and write permissions). */
export interface Access {
  /** The device may read the memory (DMA to the device). */
  read: boolean;
  /** The device may write the memory (DMA from the device). */
  write: boolean;
}

/** (source, offset, length, asFile) quadruples, flattened: how a list is handed to a backend. */
export type FlatFragments = (FragmentSource | bigint | boolean)[];

/**
 * The quadruples as the native mapList takes them: offsets and lengths in
 * one BigUint64Array, so that reading a fragment natively costs one call
 * into JavaScript instead of four.
 */
export function packFragments(flat: FlatFragments): PackedFragments {
  if (flat.length === 0 || flat.length % 4 !== 0)
    throw new TypeError('fragments must be a flat array of (source, offset, length, asFile) quadruples');
  const n = flat.length / 4;
  const packed: PackedFragments = { sources: new Array<FragmentSource>(n), ranges: new BigUint64Array(2 * n), asFile: new Uint8Array(n) };
  for (let i = 0; i < n; i++) {
    const offset = flat[4 * i + 1];
    const length = flat[4 * i + 2];
    if (typeof offset !== 'bigint' || typeof length !== 'bigint' || offset < 0n || length < 0n) {
      throw new TypeError(`fragment ${i}: offset and length must be non-negative bigints`);
    }
    packed.sources[i] = flat[4 * i] as FragmentSource;
    packed.ranges[2 * i] = offset;
    packed.ranges[2 * i + 1] = length;
    packed.asFile[i] = flat[4 * i + 3] ? 1 : 0;
  }
  return packed;
}

/** The operations an IOMMU backend provides to {@link AddressSpace}. */
export interface IommuBackend {
  /** Which backend this is. */
  readonly kind: BackendKind;
  /** The IOVA ranges devices can use now (they shrink as devices with reserved regions attach). */
  iovaRanges(): IovaRange[];
  /** Opens a device (bound to vfio-pci) and attaches it to this address space. */
  attachDevice(info: PciDeviceInfo): NativeDevice;
  /** Called when an attached device closes. */
  detachDevice(device: NativeDevice): void;
  /** Maps `length` bytes of `source` from `offset` at `iova` (through its file when `asFile`); unmapped by range with `unmap`. */
  map(source: FragmentSource, offset: bigint, length: bigint, iova: bigint, access: Access, asFile: boolean): void;
  /** Every fragment at consecutive IOVAs from `iova`, in one native call; nothing stays mapped on failure. Returns the pin id. */
  mapList(iova: bigint, fragments: FlatFragments, access: Access): number;
  /**
   * The hot paths (map a buffer, link a CPU list, unmap by pin id), bound to
   * this address space natively; a VfioStateError when it cannot map yet
   * (type1 before a device is attached).
   */
  fastPath(): NativeFastPath;
  /** Unmaps whole mappings inside [iova, iova + length); returns the bytes unmapped. */
  unmap(iova: bigint, length: bigint): bigint;
  /** IOVA ranges kept alive natively (for tests of memory lifetime). */
  pinCount(): number;
  /** Closes the devices, then the IOAS or container. */
  close(): void;
}
