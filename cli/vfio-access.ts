/**
 * Whether the library can open a device, and through which IOMMU backend:
 * what sysfs says (vfio-pci, the IOMMU group, the VFIO cdev) and what /dev
 * holds for this user. Each backend that cannot gets a short reason.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IommuGroupMember, iommuGroupMembers, keepsGroupViable, PciDeviceInfo } from '../lib/sysfs';
import { HostPaths } from './context';

/** The library's two IOMMU backends. */
export type BackendName = 'iommufd' | 'type1';

/** Whether one backend can open the device; `reason` says why not. */
export interface BackendAccess {
  ok: boolean;
  reason?: string;
}

/** Whether, and how, the library can open a device. */
export interface DeviceAccess {
  /** Some backend can open it. */
  usable: boolean;
  /** Why no backend can (the reason they share, or each one's). */
  reason?: string;
  backends: Record<BackendName, BackendAccess>;
  /** The other devices of its IOMMU group. */
  groupMembers: IommuGroupMember[];
  /** Those of them bound to a driver that keeps the group from being viable. */
  conflicts: IommuGroupMember[];
  /** The group's VFIO node (/dev/vfio/N, or /dev/vfio/noiommu-N), when the group has one. */
  groupNode?: string;
  /** The device's VFIO cdev node (/dev/vfio/devices/vfioN), when sysfs names one. */
  cdevNode?: string;
}

/** Why this process cannot open `file` for reading and writing, or undefined when it can (access(2) R_OK|W_OK). */
export function nodeProblem(file: string): string | undefined {
  try {
    fs.accessSync(file, fs.constants.R_OK | fs.constants.W_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `no ${file}` : `${file} is not readable and writable by this user (${code})`;
  }
}

/** How a group member is named in a reason: '0000:01:00.1 (snd_hda_intel)'. */
export function memberLabel(name: string, driver: string | null | undefined): string {
  return `${name} (${driver ?? 'no driver'})`;
}

/** What keeps `dev` from VFIO before any backend is asked: its driver, its IOMMU group. */
function sharedProblem(dev: PciDeviceInfo, conflicts: IommuGroupMember[]): string | undefined {
  if (dev.driver !== 'vfio-pci') return dev.driver ? `bound to ${dev.driver}, not vfio-pci` : 'no driver: not bound to vfio-pci';
  if (dev.iommuGroup === undefined) return 'no IOMMU group: is the IOMMU on?';
  if (conflicts.length > 0)
    return `IOMMU group ${dev.iommuGroup} is not viable: ${conflicts.map((c) => memberLabel(c.name, c.driver)).join(', ')}`;
  return undefined;
}

function backend(problem: string | undefined): BackendAccess {
  return problem === undefined ? { ok: true } : { ok: false, reason: problem };
}

/** Whether the library can open `dev` on this host, through each backend, and why not. */
export function deviceAccess(dev: PciDeviceInfo, paths: HostPaths): DeviceAccess {
  const groupMembers = dev.iommuGroup === undefined ? [] : iommuGroupMembers(dev.iommuGroup, paths.sys).filter((m) => m.name !== dev.bdf);
  const conflicts = groupMembers.filter((m) => !keepsGroupViable(m));
  const shared = sharedProblem(dev, conflicts);
  const vfioDir = path.join(paths.dev, 'vfio');
  let groupNode: string | undefined;
  if (dev.iommuGroup !== undefined) {
    const noiommu = path.join(vfioDir, `noiommu-${dev.iommuGroup}`);
    groupNode = fs.existsSync(noiommu) ? noiommu : path.join(vfioDir, String(dev.iommuGroup));
  }
  const cdevNode = dev.vfioCdev ? path.join(vfioDir, 'devices', dev.vfioCdev) : undefined;
  const iommufd = backend(
    shared ??
      nodeProblem(path.join(paths.dev, 'iommu')) ??
      (cdevNode ? nodeProblem(cdevNode) : 'no VFIO cdev in sysfs (a kernel without CONFIG_VFIO_DEVICE_CDEV)'),
  );
  const type1 = backend(shared ?? nodeProblem(path.join(vfioDir, 'vfio')) ?? (groupNode ? nodeProblem(groupNode) : undefined));
  const usable = iommufd.ok || type1.ok;
  const reason = usable ? undefined : (shared ?? `iommufd: ${iommufd.reason}; type1: ${type1.reason}`);
  return { usable, reason, backends: { iommufd, type1 }, groupMembers, conflicts, groupNode, cdevNode };
}
