/**
 * What VFIO itself says about a device, through the library: its flags,
 * regions (with sparse mmap areas), IRQ indexes, and whether it can export
 * dma-bufs. Opening a device makes the kernel reset it when nobody else has
 * it open; `info --sysfs-only` skips this part.
 */
import type { BackendKind } from '../lib/iommu/backend';
import type { VfioPciDevice } from '../lib/device';
import type { IrqInfo } from '../lib/interrupts';
import { HostPaths, isSystemHost } from './context';
import { describeError } from './command';
import { hexWidth } from './format';
import { DeviceAccess } from './vfio-access';

/** One region as VFIO_DEVICE_GET_REGION_INFO reports it. */
export interface RegionView {
  index: number;
  /** BAR0..BAR5, ROM, config, VGA, or region N (device-specific). */
  name: string;
  size: number;
  /** The region's offset in the device fd, hex. */
  offset: string;
  flags: number;
  read: boolean;
  write: boolean;
  mmap: boolean;
  /** The parts that may be mmapped, when the kernel limits them (VFIO_REGION_INFO_CAP_SPARSE_MMAP). */
  sparseAreas: { offset: number; size: number }[] | null;
  /** VFIO_REGION_INFO_CAP_TYPE of a device-specific region. */
  type: { type: number; subtype: number } | null;
}

/** One IRQ index as VFIO_DEVICE_GET_IRQ_INFO reports it (the library's IrqInfo), with its name. */
export interface IrqView extends IrqInfo {
  /** INTx, MSI, MSI-X, ERR or REQ. */
  name: string;
}

/** What VFIO reports about an opened device. */
export interface VfioView {
  backend: BackendKind;
  /** VFIO_DEVICE_GET_INFO flags. */
  flags: number;
  /** VFIO_DEVICE_FLAGS_RESET: the kernel can reset the device for its user. */
  reset: boolean;
  regions: RegionView[];
  irqs: IrqView[];
  /** VFIO_DEVICE_FEATURE_DMA_BUF, probed: `reason` when it is not offered. */
  dmaBuf: { supported: boolean; reason?: string };
}

const REGION_NAMES = ['BAR0', 'BAR1', 'BAR2', 'BAR3', 'BAR4', 'BAR5', 'ROM', 'config', 'VGA'];
const IRQ_NAMES = ['INTx', 'MSI', 'MSI-X', 'ERR', 'REQ'];

/** struct vfio_device_feature flags (include/uapi/linux/vfio.h). */
const VFIO_DEVICE_FEATURE_GET = 1 << 16;
const VFIO_DEVICE_FEATURE_PROBE = 1 << 18;
const VFIO_DEVICE_FEATURE_DMA_BUF = 11;
const VFIO_DEVICE_FLAGS_RESET = 1 << 0;

/** A region's name by its vfio-pci index. */
export function regionName(index: number): string {
  return REGION_NAMES[index] ?? `region ${index}`;
}

/** The name of a vfio-pci IRQ index. */
export function irqName(index: number): string {
  return IRQ_NAMES[index] ?? `IRQ index ${index}`;
}

/**
 * Asks for index 0..count-1; an index vfio-pci answers EINVAL for does not
 * exist on this device (the VGA region of a non-VGA device, the ERR IRQ of
 * a conventional PCI device) and is left out.
 */
function present<T>(count: number, ask: (index: number) => T): T[] {
  const out: T[] = [];
  for (let index = 0; index < count; index++) {
    try {
      out.push(ask(index));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    }
  }
  return out;
}

function regions(device: VfioPciDevice, count: number): RegionView[] {
  return present(count, (index) => {
    const r = device.regionInfo(index);
    return {
      index,
      name: regionName(index),
      size: Number(r.size),
      offset: hexWidth(r.offset, 1),
      flags: r.flags,
      read: r.readable,
      write: r.writable,
      mmap: r.mappable,
      sparseAreas: r.sparseAreas?.map((a) => ({ offset: Number(a.offset), size: Number(a.size) })) ?? null,
      type: r.type ?? null,
    };
  });
}

function irqs(device: VfioPciDevice, count: number): IrqView[] {
  return present(Math.min(count, IRQ_NAMES.length), (index) => ({ ...device.interrupts.info(index), name: irqName(index) }));
}

/** VFIO_DEVICE_FEATURE(PROBE | GET | DMA_BUF): 0 when the device can export its BARs as dma-bufs. */
function probeDmaBuf(device: VfioPciDevice): { supported: boolean; reason?: string } {
  try {
    device.native.feature(VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF);
    return { supported: true };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTTY')
      return { supported: false, reason: 'the kernel has no VFIO dma-buf export (CONFIG_VFIO_PCI_DMABUF, Linux 6.19+ with PCI_P2PDMA)' };
    if (code === 'EOPNOTSUPP') return { supported: false, reason: "the device's VFIO driver does not export dma-bufs" };
    return { supported: false, reason: describeError(err) };
  }
}

/** The VFIO part of `info`, or why there is none. */
export async function probeVfio(bdf: string, access: DeviceAccess, paths: HostPaths): Promise<{ vfio?: VfioView; missing?: string }> {
  if (!isSystemHost(paths))
    return {
      missing:
        "not opened: sysfs or /dev is a test tree (NODE_VFIO_SYSFS_ROOT, NODE_VFIO_DEV_ROOT), and the library opens the system's /dev",
    };
  if (!access.usable) return { missing: `not opened: ${access.reason}` };
  const backend: BackendKind = access.backends.iommufd.ok ? 'iommufd' : 'type1';
  let AddressSpace: typeof import('../lib/address-space').AddressSpace;
  try {
    ({ AddressSpace } = await import('../lib/address-space'));
  } catch (err) {
    return { missing: `not opened: the library's native addon does not load (${(err as Error).message})` };
  }
  try {
    const space = AddressSpace.open({ backend });
    try {
      const device = space.openDevice(bdf);
      const info = device.info();
      return {
        vfio: {
          backend,
          flags: info.flags,
          reset: (info.flags & VFIO_DEVICE_FLAGS_RESET) !== 0,
          regions: regions(device, info.numRegions),
          irqs: irqs(device, info.numIrqs),
          dmaBuf: probeDmaBuf(device),
        },
      };
    } finally {
      space.close();
    }
  } catch (err) {
    return { missing: `opening it through VFIO (${backend}) failed: ${describeError(err)}` };
  }
}
