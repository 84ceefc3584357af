/**
 * `node-vfio/vm`: the test guest as a library, for integration tests of
 * drivers on machines with no VFIO hardware. It boots a QEMU guest with a
 * vIOMMU and DMA-capable devices (edu, ivshmem, nvme) bound to vfio-pci,
 * runs a command or a mocha suite there with the host's Node, and hands back
 * the status, the output and the host files behind the devices, the outside
 * witnesses of what the devices did.
 *
 * The library (`node-vfio`) never imports this module: importing it installs
 * nothing and starts nothing; packages, the kernel and QEMU are fetched when
 * a guest is first run.
 *
 * @module node-vfio/vm
 */
export { runInGuest, EXIT_MARKER } from './guest';
export type { GuestRunOptions, GuestRunResult } from './guest';
export { runMochaInGuest } from './mocha';
export type { GuestMochaOptions, GuestMochaResult, GuestTestCounts, GuestTestFailure } from './mocha';
export { prepareGuest } from './prepare';
export type { PreparedGuest } from './prepare';
export { DEVICE_BDF, DEVICE_NAMES, IVSHMEM_SIZE, NVME_IMAGE_SIZE, NVME_SERIAL } from './devices';
export type { DeviceFiles, DeviceName } from './devices';
export type { GuestKernel, KernelKind, Log } from './kernel';
export type { Qemu, QemuChoice } from './qemu';
export { HarnessError } from './apt';
