/**
 * PCI devices as sysfs shows them: the IOMMU group, the bound driver and the
 * VFIO cdev. The root is a parameter so the parsing can be tested on a fake tree.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface PciResource {
  index: number;
  start: bigint;
  end: bigint;
  flags: bigint;
}

export interface PciDeviceInfo {
  /** Domain:bus:slot.function, e.g. '0000:00:03.0'. */
  bdf: string;
  vendor: number;
  device: number;
  classCode: number;
  driver?: string;
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
  return text.trim().split('\n').flatMap((line, index) => {
    const [start, end, flags] = line.trim().split(/\s+/).map((x) => BigInt(x));
    return start === 0n && end === 0n ? [] : [{ index, start, end, flags }];
  });
}

export function readPciDevice(bdf: string, sysfsRoot = '/sys'): PciDeviceInfo {
  const id = normalizeBdf(bdf);
  const dir = path.join(sysfsRoot, 'bus/pci/devices', id);
  if (!fs.existsSync(dir)) throw Object.assign(new Error(`no PCI device ${id} (${dir} does not exist)`), { code: 'ENOENT' });
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

/** Every PCI device bound to vfio-pci. */
export function listVfioPciDevices(sysfsRoot = '/sys'): PciDeviceInfo[] {
  const dir = path.join(sysfsRoot, 'bus/pci/devices');
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).sort().map((bdf) => readPciDevice(bdf, sysfsRoot)).filter((d) => d.driver === 'vfio-pci');
}
