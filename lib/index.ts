/**
 * node-vfio: userspace device drivers for Linux in TypeScript, over VFIO
 * and iommufd. Open an {@link AddressSpace}, open devices in it, map
 * {@link DmaBuffer}s (or {@link PhysList}s) for their DMA, drive their
 * registers through {@link Region}s and take their interrupts as events
 * ({@link IrqVector}). {@link EduDevice} and {@link NvmeController} are
 * drivers written with it.
 *
 * @module node-vfio
 */
export { AddressSpace, DmaMapping, IovaWindow } from './address-space';
export type { DmaMappingEvent } from './dma-mapping';
export type { AddressSpaceOptions, AllocationOptions, MapOptions, BackendChoice } from './address-space';
export { VfioPciDevice, PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY } from './device';
export { Region, PciRegion } from './region';
export type { RegionInfo } from './region';
export { DeviceInterrupts, IrqVector, IrqIndex } from './interrupts';
export type { IrqInfo, IrqMode, IrqWaitOptions, Listener as IrqListener } from './interrupts';
export { DmaBuffer, PAGE_SIZE, HUGE_PAGE_SIZE, freeHugePages } from './memory';
export type { DmaMemoryKind, DmaBufferOptions } from './memory';
export { DmaPool, DmaPiece } from './dma-pool';
export type { DmaPoolOptions, DmaPoolMapOptions } from './dma-pool';
export { PhysList } from './phys-list';
export type { PhysKind, CpuFragmentInput, RangeInput, PhysFragment, CpuFragment, P2PFragment } from './phys-list';
export { P2PProvider } from './p2p-provider';
export { IommufdContext } from './iommu/iommufd';
export type { BackendKind, Access } from './iommu/backend';
export { VFIO_CONTAINER_PATH, IOMMUFD_CONTAINER_PATH } from './iommu/type1';
export type { Type1Choice, Type1Flavour } from './iommu/type1';
export { IovaAllocator, IovaAllocatorError, IovaNoSpaceError } from './iova-allocator';
export type { IovaRange, IovaAllocation, IovaAllocatorOptions, IovaAllocateOptions, IovaErrorCode } from './iova-allocator';
export { VfioError, VfioStateError } from './errors';
export type { VfioErrorInfo, MappedMemory } from './errors';
export { readPciDevice, listVfioPciDevices, normalizeBdf } from './sysfs';
export type { PciDeviceInfo, PciResource } from './sysfs';
export type { NativeFile } from './native';
export { EduDevice } from './drivers/edu';
export type { EduWaitOptions, EduOptions } from './drivers/edu';
export * from './drivers/nvme';
