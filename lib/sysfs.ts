/**
 * PCI devices as sysfs shows them: the IOMMU group and its other members, the
 * bound driver and the VFIO cdev, reset methods and NUMA node. The root is a
 * parameter so the parsing can be tested on a fake tree.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkString } from './validate';

/** One line of a device's sysfs `resource` file: a BAR, the ROM, a bridge window or an SR-IOV BAR. */
export interface PciResource {
  /** The line's index: 0..5 the BARs, 6 the ROM, 7.. bridge windows or SR-IOV BARs. */
  index: number;
  /** The first byte's address. */
  start: bigint;
  /** The last byte's address (inclusive). */
  end: bigint;
  /** IORESOURCE_* bits (include/linux/ioport.h). */
  flags: bigint;
}

/** What sysfs says about a PCI device that the library needs to open it. */
export interface PciDeviceInfo {
  /** Domain:bus:slot.function, e.g. '0000:00:03.0'. */
  bdf: string;
  /** PCI vendor ID, e.g. 0x1234. */
  vendor: number;
  /** PCI device ID, e.g. 0x11e8. */
  device: number;
  /** The 24-bit class code (base class, subclass, programming interface), e.g. 0x010802 for NVMe. */
  classCode: number;
  /** The bound driver's name ('vfio-pci', 'nvme', ...); undefined when unbound. */
  driver?: string;
  /** The IOMMU group number; undefined without an IOMMU. */
  iommuGroup?: number;
  /** Name of the VFIO device cdev under /dev/vfio/devices (e.g. 'vfio0'), when vfio-pci has it. */
  vfioCdev?: string;
  /** Non-empty BARs and ROM from the `resource` file. */
  resources: PciResource[];
}

const BDF = /^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$/i;

/** The canonical form of a PCI address ('00:03.0' becomes '0000:00:03.0'); RangeError when it is not one. */
export function normalizeBdf(bdf: string): string {
  if (typeof bdf !== 'string') throw new TypeError(`a PCI address must be a string, not ${typeof bdf}`);
  const m = BDF.exec(bdf.trim());
  if (!m) throw new RangeError(`'${bdf}' is not a PCI address (DDDD:BB:SS.F, e.g. 0000:00:03.0)`);
  return `${(m[1] ?? '0000').toLowerCase()}:${m[2].toLowerCase()}:${m[3].toLowerCase()}.${m[4]}`;
}

/** Reads a sysfs attribute of one hex number ("0x1234"). */
function readHex(file: string): number {
  return Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 16);
}

function linkName(file: string): string | undefined {
  try {
    return path.basename(fs.readlinkSync(file));
  } catch {
    return undefined;
  }
}

/** Parses sysfs's `resource` file: one "start end flags" line per BAR, ROM and bridge window. */
export function parseResources(text: string): PciResource[] {
  return text
    .trim()
    .split('\n')
    .flatMap((line, index) => {
      const [start, end, flags] = line
        .trim()
        .split(/\s+/)
        .map((x) => BigInt(x));
      return start === 0n && end === 0n ? [] : [{ index, start, end, flags }];
    });
}

/** The sysfs directory of a PCI device; an ENOENT error when there is no such device. */
function deviceDir(bdf: string, sysfsRoot: string): { id: string; dir: string } {
  const id = normalizeBdf(bdf);
  const dir = path.join(sysfsRoot, 'bus/pci/devices', id);
  if (!fs.existsSync(dir)) throw Object.assign(new Error(`no PCI device ${id} (${dir} does not exist)`), { code: 'ENOENT' });
  return { id, dir };
}

/** Ids, driver, IOMMU group, VFIO cdev and resources of the device at `bdf`; an ENOENT error when there is none. */
export function readPciDevice(bdf: string, sysfsRoot = '/sys'): PciDeviceInfo {
  checkString(sysfsRoot, 'sysfsRoot');
  const { id, dir } = deviceDir(bdf, sysfsRoot);
  const group = linkName(path.join(dir, 'iommu_group'));
  const vfioDev = path.join(dir, 'vfio-dev');
  // vfio-dev/vfioN exists since Linux 6.1; it is a character device (has `dev`) only with VFIO_DEVICE_CDEV.
  const cdev = fs.existsSync(vfioDev)
    ? fs.readdirSync(vfioDev).find((n) => /^vfio\d+$/.test(n) && fs.existsSync(path.join(vfioDev, n, 'dev')))
    : undefined;
  const resourceFile = path.join(dir, 'resource');
  return {
    bdf: id,
    vendor: readHex(path.join(dir, 'vendor')),
    device: readHex(path.join(dir, 'device')),
    classCode: readHex(path.join(dir, 'class')),
    driver: linkName(path.join(dir, 'driver')),
    iommuGroup: group === undefined ? undefined : Number(group),
    vfioCdev: cdev,
    resources: fs.existsSync(resourceFile) ? parseResources(fs.readFileSync(resourceFile, 'utf8')) : [],
  };
}

/** Every PCI device, in address order. */
export function listPciDevices(sysfsRoot = '/sys'): PciDeviceInfo[] {
  checkString(sysfsRoot, 'sysfsRoot');
  const dir = path.join(sysfsRoot, 'bus/pci/devices');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .sort()
    .map((bdf) => readPciDevice(bdf, sysfsRoot));
}

/** Every PCI device bound to vfio-pci. */
export function listVfioPciDevices(sysfsRoot = '/sys'): PciDeviceInfo[] {
  return listPciDevices(sysfsRoot).filter((d) => d.driver === 'vfio-pci');
}

/** What sysfs says about a device beyond PciDeviceInfo: for tools that show or change its binding. */
export interface PciDeviceDetails {
  /** The NUMA node the device is attached to; undefined when unknown (-1) or the kernel has no NUMA. */
  numaNode?: number;
  /** The reset methods the kernel uses, in order (`reset_method`: flr, pm, bus...); empty when it cannot reset the device. */
  resetMethods: string[];
  /** The driver named in `driver_override`, which alone may bind the device; undefined when none is. */
  driverOverride?: string;
  /** Whether the header type is a bridge's (config byte 0x0e), or, where config cannot be read, the class is a PCI/CardBus bridge's. */
  bridge: boolean;
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** PCI_HEADER_TYPE: byte 0x0e of config space, its low 7 bits the layout (0 a normal device, 1 a PCI bridge, 2 CardBus). */
const PCI_HEADER_TYPE = 0x0e;

/**
 * Whether a device is a bridge. The header type (readable by anyone: the
 * first 64 bytes of config) says it; a class code of PCI-to-PCI, CardBus or
 * semi-transparent bridge stands in when there is no config file.
 */
function isBridge(dir: string, classCode: number | undefined): boolean {
  try {
    const fd = fs.openSync(path.join(dir, 'config'), 'r');
    try {
      const b = Buffer.alloc(1);
      if (fs.readSync(fd, b, 0, 1, PCI_HEADER_TYPE) === 1) return (b[0] & 0x7f) !== 0;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // no config file: fall back to the class code
  }
  return classCode !== undefined && isPciBridgeClass(classCode);
}

/** PCI-to-PCI (0x0604), CardBus (0x0607) and semi-transparent PCI-to-PCI (0x0609) bridges, from a 24-bit class code. */
export function isPciBridgeClass(classCode: number): boolean {
  return [0x0604, 0x0607, 0x0609].includes(classCode >>> 8);
}

/** NUMA node, reset methods, driver_override and bridge-ness of the device at `bdf`. */
export function readPciDetails(bdf: string, sysfsRoot = '/sys'): PciDeviceDetails {
  const { dir } = deviceDir(bdf, sysfsRoot);
  const numa = Number(readText(path.join(dir, 'numa_node')) ?? -1);
  const override = readText(path.join(dir, 'driver_override'));
  const classText = readText(path.join(dir, 'class'));
  return {
    numaNode: Number.isInteger(numa) && numa >= 0 ? numa : undefined,
    resetMethods: (readText(path.join(dir, 'reset_method')) ?? '').split(/\s+/).filter(Boolean),
    driverOverride: override && override !== '(null)' ? override : undefined,
    bridge: isBridge(dir, classText === undefined ? undefined : Number.parseInt(classText, 16)),
  };
}

/** A device of an IOMMU group, PCI or not, as the group's `devices/` directory shows it. */
export interface IommuGroupMember {
  /** The device's name: a PCI address for PCI devices. */
  name: string;
  driver?: string;
  /** 24-bit class code, for PCI devices. */
  classCode?: number;
  bridge: boolean;
}

/** The devices of IOMMU group `group`, in name order. */
export function iommuGroupMembers(group: number, sysfsRoot = '/sys'): IommuGroupMember[] {
  if (!Number.isInteger(group) || group < 0) throw new RangeError(`an IOMMU group is a non-negative integer, not ${group}`);
  const dir = path.join(sysfsRoot, 'kernel/iommu_groups', String(group), 'devices');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .sort()
    .map((name) => {
      const dev = path.join(dir, name);
      const classText = readText(path.join(dev, 'class'));
      const classCode = classText === undefined ? undefined : Number.parseInt(classText, 16);
      return { name, driver: linkName(path.join(dev, 'driver')), classCode, bridge: isBridge(dev, classCode) };
    });
}

/**
 * Drivers that leave DMA of their device to its user (the kernel's
 * driver_managed_dma): vfio-pci and its variant drivers (mlx5_vfio_pci,
 * nvgrace-gpu-vfio-pci...), pci-stub, and pcieport on bridges.
 */
export function isDmaSafeDriver(driver: string): boolean {
  return driver === 'pci-stub' || driver === 'pcieport' || /vfio[-_]pci$/.test(driver);
}

/**
 * Whether a group member lets the group be viable for VFIO: no driver, a
 * driver that leaves DMA alone (isDmaSafeDriver), or a bridge.
 */
export function keepsGroupViable(member: IommuGroupMember): boolean {
  return member.driver === undefined || member.bridge || isDmaSafeDriver(member.driver);
}

/** The other members of the device's IOMMU group that keep the group from being viable (empty when it is, or has no group). */
export function groupConflicts(bdf: string, sysfsRoot = '/sys'): IommuGroupMember[] {
  const info = readPciDevice(bdf, sysfsRoot);
  if (info.iommuGroup === undefined) return [];
  return iommuGroupMembers(info.iommuGroup, sysfsRoot).filter((m) => m.name !== info.bdf && !keepsGroupViable(m));
}
