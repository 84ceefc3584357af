/**
 * The table of operations every IOMMU backend provides. The mapping
 * bookkeeping (IOVA allocation, the mapping table, phys_list linking) is
 * written once above it, in AddressSpace.
 */
import { FragmentSource, IovaRange, NativeDevice, NativeMemory } from '../native';
import { PciDeviceInfo } from '../sysfs';

export type BackendKind = 'iommufd' | 'type1';

export interface Access {
  read: boolean;
  write: boolean;
}

/** (source, offset, length, asFile) quadruples, flattened, as the native mapList takes them. */
export type FlatFragments = (FragmentSource | bigint | boolean)[];

export interface IommuBackend {
  readonly kind: BackendKind;
  /** Whether a dma-buf (a peer BAR exported by VFIO) can be mapped; else peers map through their mmap. */
  readonly mapsDmaBuf: boolean;
  /** The IOVA ranges devices can use now (they shrink as devices with reserved regions attach). */
  iovaRanges(): IovaRange[];
  /** Opens a device (bound to vfio-pci) and attaches it to this address space. */
  attachDevice(info: PciDeviceInfo): NativeDevice;
  /** Called when an attached device closes. */
  detachDevice(device: NativeDevice): void;
  map(source: FragmentSource, offset: bigint, length: bigint, iova: bigint, access: Access, asFile: boolean): void;
  /** Every fragment at consecutive IOVAs from `iova`, in one native call; nothing stays mapped on failure. */
  mapList(iova: bigint, fragments: FlatFragments, access: Access): bigint;
  /** Unmaps whole mappings inside [iova, iova + length); returns the bytes unmapped. */
  unmap(iova: bigint, length: bigint): bigint;
  /** IOVA ranges kept alive natively (for tests of memory lifetime). */
  pinCount(): number;
  close(): void;
}

export type { NativeMemory };
