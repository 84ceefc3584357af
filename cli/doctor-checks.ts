/**
 * The checks of `node-vfio doctor`, one function each: what the library
 * needs of a host (IOMMU, VFIO's device nodes, permissions for this user,
 * RLIMIT_MEMLOCK), what it can use (huge pages, iommufd, VFIO dma-buf
 * export). Each says ok, warn or fail, what it found, and the command that
 * fixes it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PciDeviceInfo } from '../lib/sysfs';
import { HostPaths } from './context';
import { formatBytes } from './format';
import { cpuVendor, hasIpcLock, kernelVersion, meminfoField, parseLimit, readOptional, versionAtLeast } from './host-facts';
import { deviceAccess, nodeProblem } from './vfio-access';

/** ok: fine; warn: works, with less (a backend, a feature); fail: the library cannot work until it is fixed. */
export type CheckStatus = 'ok' | 'warn' | 'fail';

/** One check's outcome. */
export interface Check {
  id: string;
  title: string;
  status: CheckStatus;
  /** What was found. */
  detail: string;
  /** The command (or step) that fixes it, when it is not ok. */
  fix?: string;
}

/** What every check may look at. */
export interface DoctorInput {
  paths: HostPaths;
  /** RLIMIT_MEMLOCK wanted, in bytes. */
  memlock: bigint;
  /** The running kernel's release. */
  release?: string;
  /** Its configuration, when readable. */
  config?: { config: Map<string, string>; source: string };
  /** Devices bound to vfio-pci. */
  vfioDevices: PciDeviceInfo[];
}

function entries(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** The IOMMU is on: an IOMMU unit registered (/sys/class/iommu) or IOMMU groups exist. */
export function checkIommu(i: DoctorInput): Check {
  const units = entries(path.join(i.paths.sys, 'class/iommu'));
  const groups = entries(path.join(i.paths.sys, 'kernel/iommu_groups'));
  const base = { id: 'iommu', title: 'IOMMU enabled' };
  if (units.length > 0 || groups.length > 0) {
    return { ...base, status: 'ok', detail: `${units.length > 0 ? `${units.join(', ')}; ` : ''}${groups.length} IOMMU groups` };
  }
  const cmdline = readOptional(path.join(i.paths.proc, 'cmdline')) ?? '';
  const asked = /(^|\s)(intel_iommu=on|amd_iommu=\S+)/.exec(cmdline)?.[2];
  const vendor = cpuVendor(i.paths);
  let fix: string;
  if (vendor === 'AuthenticAMD') fix = 'turn on the IOMMU (AMD-Vi) in the firmware setup and reboot: Linux enables it by itself';
  else if (asked) fix = 'turn on VT-d in the firmware setup and reboot';
  else
    fix =
      "turn on VT-d in the firmware setup, then: sudo sed -i 's/^GRUB_CMDLINE_LINUX=\"/&intel_iommu=on /' /etc/default/grub && sudo update-grub && sudo reboot";
  const detail = asked
    ? `${asked} is on the kernel command line, but no IOMMU registered (${i.paths.sys}/class/iommu is empty): the firmware does not offer one`
    : `no IOMMU: ${i.paths.sys}/class/iommu and ${i.paths.sys}/kernel/iommu_groups are empty, and the kernel command line has no intel_iommu=on`;
  return { ...base, status: 'fail', detail, fix };
}

/** The vfio-pci driver is there to bind devices to. */
export function checkVfioPci(i: DoctorInput): Check {
  const dir = path.join(i.paths.sys, 'bus/pci/drivers/vfio-pci');
  const base = { id: 'vfio-pci', title: 'vfio-pci driver loaded' };
  return fs.existsSync(dir)
    ? { ...base, status: 'ok', detail: dir }
    : { ...base, status: 'fail', detail: `no ${dir}`, fix: 'sudo modprobe vfio-pci' };
}

function configSays(i: DoctorInput, option: string): string | undefined {
  return i.config?.config.get(option);
}

/** The two backends' entry points: /dev/vfio/vfio (type1) and /dev/iommu (iommufd); one of them must be there. */
export function checkBackendNodes(i: DoctorInput): Check[] {
  const container = path.join(i.paths.dev, 'vfio/vfio');
  const iommu = path.join(i.paths.dev, 'iommu');
  const has = { type1: fs.existsSync(container), iommufd: fs.existsSync(iommu) };
  const missing = has.type1 || has.iommufd ? 'warn' : 'fail';
  const iommufdConfig = configSays(i, 'CONFIG_IOMMUFD');
  return [
    has.type1
      ? { id: 'vfio-container', title: 'type1 backend (/dev/vfio/vfio)', status: 'ok', detail: container }
      : {
          id: 'vfio-container',
          title: 'type1 backend (/dev/vfio/vfio)',
          status: missing,
          detail: `no ${container}: the type1 backend cannot open devices`,
          fix: 'sudo modprobe vfio vfio_iommu_type1',
        },
    has.iommufd
      ? { id: 'iommufd', title: 'iommufd backend (/dev/iommu)', status: 'ok', detail: iommu }
      : {
          id: 'iommufd',
          title: 'iommufd backend (/dev/iommu)',
          status: missing,
          detail: `no ${iommu}: the iommufd backend (and P2P through dma-bufs) is unavailable${iommufdConfig === 'n' ? ` (CONFIG_IOMMUFD is not set in ${i.config?.source})` : ''}`,
          fix:
            iommufdConfig === 'n'
              ? 'a kernel built with CONFIG_IOMMUFD=y and CONFIG_VFIO_DEVICE_CDEV=y (Linux 6.6 or later)'
              : 'sudo modprobe iommufd',
        },
  ];
}

/** Devices bound to vfio-pci, and their VFIO cdevs (the iommufd backend opens those). */
export function checkVfioDevices(i: DoctorInput): Check {
  const base = { id: 'vfio-devices', title: 'devices bound to vfio-pci' };
  if (i.vfioDevices.length === 0) {
    return { ...base, status: 'warn', detail: 'no device is bound to vfio-pci', fix: 'node-vfio list, then: sudo node-vfio bind BDF' };
  }
  const describe = (d: PciDeviceInfo): string => `${d.bdf} (group ${d.iommuGroup ?? 'none'}${d.vfioCdev ? `, ${d.vfioCdev}` : ''})`;
  const detail = i.vfioDevices.map(describe).join(', ');
  const noCdev = i.vfioDevices.filter((d) => !d.vfioCdev);
  if (noCdev.length === i.vfioDevices.length) {
    return {
      ...base,
      status: 'warn',
      detail: `${detail}; no VFIO cdevs: the kernel lacks CONFIG_VFIO_DEVICE_CDEV, so only the type1 backend can open them`,
      fix: 'a kernel built with CONFIG_VFIO_DEVICE_CDEV=y (Linux 6.6 or later)',
    };
  }
  const absent = i.vfioDevices.filter((d) => d.vfioCdev && !fs.existsSync(path.join(i.paths.dev, 'vfio/devices', d.vfioCdev)));
  if (absent.length > 0) {
    return {
      ...base,
      status: 'warn',
      detail: `${detail}; no node in ${i.paths.dev}/vfio/devices for ${absent.map((d) => d.vfioCdev).join(', ')}`,
      fix: 'sudo udevadm trigger --subsystem-match=vfio-dev',
    };
  }
  return { ...base, status: 'ok', detail };
}

function userName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return String(process.getuid?.() ?? '');
  }
}

/** This user can read and write every VFIO node there is (access(2) R_OK|W_OK, as the library will open them). */
export function checkPermissions(i: DoctorInput): Check {
  const uid = process.getuid?.() ?? -1;
  const user = userName();
  const nodes = [path.join(i.paths.dev, 'vfio/vfio'), path.join(i.paths.dev, 'iommu')];
  for (const d of i.vfioDevices) {
    const a = deviceAccess(d, i.paths);
    if (a.groupNode) nodes.push(a.groupNode);
    if (a.cdevNode) nodes.push(a.cdevNode);
  }
  const present = [...new Set(nodes)].filter((n) => fs.existsSync(n));
  const refused = present.filter((n) => nodeProblem(n) !== undefined);
  const base = { id: 'permissions', title: `device node access for ${user} (uid ${uid})` };
  if (refused.length === 0) {
    return { ...base, status: 'ok', detail: present.length > 0 ? `read and write: ${present.join(', ')}` : 'no VFIO device nodes yet' };
  }
  return {
    ...base,
    status: 'fail',
    detail: `no read/write access to ${refused.join(', ')} (a udev rule with OWNER="${user}" makes it last)`,
    fix: `sudo chown ${user} ${refused.join(' ')}`,
  };
}

/** RLIMIT_MEMLOCK (pinned memory counts against it) against what the caller wants, unless CAP_IPC_LOCK lifts it. */
export function checkMemlock(i: DoctorInput): Check {
  const base = { id: 'memlock', title: 'RLIMIT_MEMLOCK (pinned memory)' };
  const limits = readOptional(path.join(i.paths.proc, 'self/limits'));
  const limit = limits === undefined ? undefined : parseLimit(limits, 'Max locked memory');
  if (!limit) return { ...base, status: 'warn', detail: `cannot read ${i.paths.proc}/self/limits`, fix: 'ulimit -l' };
  const show = (v: bigint | null): string => (v === null ? 'unlimited' : formatBytes(v));
  if (hasIpcLock(readOptional(path.join(i.paths.proc, 'self/status')) ?? '')) {
    return { ...base, status: 'ok', detail: `CAP_IPC_LOCK: pinning is not limited (RLIMIT_MEMLOCK ${show(limit.soft)})` };
  }
  if (limit.soft === null || limit.soft >= i.memlock)
    return { ...base, status: 'ok', detail: `${show(limit.soft)}, at least ${formatBytes(i.memlock)}` };
  const fix =
    limit.hard === null || limit.hard >= i.memlock
      ? `ulimit -l ${i.memlock / 1024n}`
      : `sudo prlimit --pid $$ --memlock=${i.memlock}:${i.memlock}`;
  return {
    ...base,
    status: 'fail',
    detail: `${show(limit.soft)} (hard ${show(limit.hard)}), less than the ${formatBytes(i.memlock)} asked: pinning more fails with ENOMEM`,
    fix,
  };
}

/** Huge pages reserved and free (DmaBuffer's huge-page memory comes from them). */
export function checkHugepages(i: DoctorInput): Check {
  const base = { id: 'hugepages', title: 'huge pages' };
  const meminfo = readOptional(path.join(i.paths.proc, 'meminfo')) ?? '';
  const total = meminfoField(meminfo, 'HugePages_Total');
  const free = meminfoField(meminfo, 'HugePages_Free') ?? 0;
  const sizeKiB = meminfoField(meminfo, 'Hugepagesize') ?? 2048;
  if (total === undefined) return { ...base, status: 'warn', detail: 'the kernel has no huge pages (CONFIG_HUGETLBFS)' };
  const want = Number((i.memlock + BigInt(sizeKiB) * 1024n - 1n) / (BigInt(sizeKiB) * 1024n));
  const fix = `echo ${total - free + Math.max(want, 1)} | sudo tee /proc/sys/vm/nr_hugepages`;
  const each = formatBytes(sizeKiB * 1024);
  if (total === 0) return { ...base, status: 'warn', detail: `none reserved (${each} each): huge-page DmaBuffers fail`, fix };
  if (free === 0) return { ...base, status: 'warn', detail: `all ${total} in use (${each} each)`, fix };
  return { ...base, status: 'ok', detail: `${free} of ${total} free, ${each} each` };
}

/** The release that added VFIO_DEVICE_FEATURE_DMA_BUF (vfio-pci's dma-buf export of BARs). */
export const DMA_BUF_SINCE: [number, number] = [6, 19];

/**
 * VFIO's dma-buf export (P2P over iommufd): CONFIG_VFIO_PCI_DMABUF in the
 * kernel's config when it is readable; else the release says whether it can
 * be there at all. `probed` is what VFIO answered for an open device.
 */
export function checkDmaBuf(i: DoctorInput, probed?: { bdf: string; supported: boolean; reason?: string }): Check {
  const base = { id: 'dma-buf', title: 'VFIO dma-buf export (P2P over iommufd)' };
  const fix = `a kernel of ${DMA_BUF_SINCE.join('.')} or later built with CONFIG_PCI_P2PDMA=y (which turns on CONFIG_VFIO_PCI_DMABUF)`;
  if (probed) {
    return probed.supported
      ? { ...base, status: 'ok', detail: `VFIO_DEVICE_FEATURE_DMA_BUF offered (probed on ${probed.bdf})` }
      : { ...base, status: 'warn', detail: `not offered (probed on ${probed.bdf}): ${probed.reason}`, fix };
  }
  const option = configSays(i, 'CONFIG_VFIO_PCI_DMABUF');
  if (option !== undefined) {
    return option === 'y'
      ? { ...base, status: 'ok', detail: `CONFIG_VFIO_PCI_DMABUF=y (${i.config?.source})` }
      : { ...base, status: 'warn', detail: `CONFIG_VFIO_PCI_DMABUF is not set (${i.config?.source}): P2P needs the type1 backend`, fix };
  }
  const v = i.release ? kernelVersion(i.release) : undefined;
  if (v && !versionAtLeast(v, ...DMA_BUF_SINCE)) {
    return {
      ...base,
      status: 'warn',
      detail: `absent: Linux ${i.release} predates ${DMA_BUF_SINCE.join('.')}, which added it; P2P needs the type1 backend`,
      fix,
    };
  }
  return {
    ...base,
    status: 'warn',
    detail: `unknown: Linux ${i.release ?? '(release unreadable)'} can have it, but its config is not readable (no ${i.paths.proc}/config.gz or ${i.paths.boot}/config-${i.release})`,
    fix: 'sudo node-vfio doctor --probe (asks VFIO through a device bound to vfio-pci)',
  };
}

/** The first device bound to vfio-pci that this user can open, to probe VFIO with. */
export function probeCandidate(i: DoctorInput): PciDeviceInfo | undefined {
  return i.vfioDevices.find((d) => deviceAccess(d, i.paths).usable);
}
