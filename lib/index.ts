/** node-vfio: userspace device drivers for Linux in TypeScript. */
export { AddressSpace, DmaMapping, IovaWindow } from './address-space';
export type { AddressSpaceOptions, AllocationOptions, MapOptions, BackendChoice } from './address-space';
export { VfioPciDevice, PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY } from './device';
export { Region, PciRegion } from './region';
export type { RegionInfo } from './region';
export { DmaBuffer, PAGE_SIZE, HUGE_PAGE_SIZE, freeHugePages } from './memory';
export type { DmaMemoryKind } from './memory';
export { PhysList } from './phys-list';
export type { PhysKind, CpuFragmentInput, RangeInput } from './phys-list';
export { P2PProvider } from './p2p-provider';
export { IommufdContext } from './iommu/iommufd';
export type { BackendKind, Access } from './iommu/backend';
export { IovaAllocator } from './iova-allocator';
export type { IovaRange } from './iova-allocator';
export { VfioError, VfioStateError } from './errors';
export { readPciDevice, listVfioPciDevices, normalizeBdf } from './sysfs';
export type { PciDeviceInfo } from './sysfs';
export { EduDevice } from './drivers/edu';
