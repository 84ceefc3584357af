/** `node-vfio list`: every PCI device, its driver and IOMMU group, and whether VFIO can use it. */
import { listPciDevices, PciDeviceInfo } from '../lib/sysfs';
import { CliContext, HostPaths } from './context';
import { Command, defineCommand, printJson } from './command';
import { classLabel, formatTable, hexWidth } from './format';
import { BackendAccess, BackendName, DeviceAccess, deviceAccess, memberLabel } from './vfio-access';

/** A device as `list --json` prints it (and `info --json` starts with). */
export interface DeviceEntry {
  bdf: string;
  /** '0x1234', as sysfs writes it. */
  vendor: string;
  device: string;
  /** '0x010802' */
  class: string;
  driver: string | null;
  iommuGroup: number | null;
  /** The other devices of the IOMMU group. */
  groupMembers: { bdf: string; driver: string | null }[];
  /** The VFIO cdev's name (vfioN), when the device has one. */
  cdev: string | null;
  /** Whether the library can open it through some backend. */
  usable: boolean;
  /** Why not, when it cannot. */
  reason: string | null;
  backends: Record<BackendName, BackendAccess>;
}

/** The list/info entry of one device (`access` when the caller has it already). */
export function deviceEntry(info: PciDeviceInfo, paths: HostPaths, access: DeviceAccess = deviceAccess(info, paths)): DeviceEntry {
  return {
    bdf: info.bdf,
    vendor: hexWidth(info.vendor, 4),
    device: hexWidth(info.device, 4),
    class: hexWidth(info.classCode, 6),
    driver: info.driver ?? null,
    iommuGroup: info.iommuGroup ?? null,
    groupMembers: access.groupMembers.map((m) => ({ bdf: m.name, driver: m.driver ?? null })),
    cdev: info.vfioCdev ?? null,
    usable: access.usable,
    reason: access.reason ?? null,
    backends: access.backends,
  };
}

/** 'yes (iommufd, type1)' or 'no: why'. */
export function usableLabel(e: DeviceEntry): string {
  if (!e.usable) return `no: ${e.reason}`;
  return `yes (${(Object.keys(e.backends) as BackendName[]).filter((b) => e.backends[b].ok).join(', ')})`;
}

function listTable(entries: DeviceEntry[], infos: PciDeviceInfo[]): string {
  const rows = entries.map((e, i) => [
    e.bdf,
    `${e.vendor.slice(2)}:${e.device.slice(2)}`,
    classLabel(infos[i].classCode),
    e.driver ?? '-',
    e.iommuGroup === null ? '-' : String(e.iommuGroup),
    e.groupMembers.length === 0 ? '-' : e.groupMembers.map((m) => memberLabel(m.bdf, m.driver)).join(', '),
    usableLabel(e),
  ]);
  return formatTable(['BDF', 'ID', 'CLASS', 'DRIVER', 'GROUP', 'SHARES GROUP WITH', 'VFIO'], rows);
}

function runList(json: boolean, ctx: CliContext): number {
  const infos = listPciDevices(ctx.paths.sys);
  const entries = infos.map((d) => deviceEntry(d, ctx.paths));
  if (json) printJson(ctx, entries);
  else if (entries.length === 0) ctx.out(`no PCI devices under ${ctx.paths.sys}/bus/pci/devices\n`);
  else ctx.out(`${listTable(entries, infos)}\n`);
  return 0;
}

/** The `list` command. */
export const listCommand: Command = defineCommand({
  name: 'list',
  summary: 'every PCI device: driver, IOMMU group, usable through VFIO or why not',
  description: [
    'Lists every PCI device with its vendor:device id, class, bound driver, IOMMU group and the',
    'other devices in that group, and whether the library can open it: bound to vfio-pci, its',
    'group viable (every other member bound to vfio-pci, pci-stub, no driver, or a bridge), and',
    'the device nodes of a backend present and readable and writable by this user (iommufd:',
    '/dev/iommu and /dev/vfio/devices/vfioN; type1: /dev/vfio/vfio and /dev/vfio/GROUP).',
  ].join('\n'),
  options: { json: { type: 'boolean', description: 'print a JSON array, one object per device' } },
  run: ({ values }, ctx) => runList(values.json === true, ctx),
});
