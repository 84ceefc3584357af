/**
 * The library's errors. System call failures are VfioError, shaped like
 * Node's own fs errors (code 'EINVAL', errno -22, syscall
 * 'ioctl(IOMMU_IOAS_MAP)'), with a message that says what to check. The
 * class is handed to the native side, which builds it with the facts; the
 * hints (policy) live here.
 */
import * as fs from 'node:fs';
import { checkInt, checkObject, checkString, kindOf } from './validate';

/** The facts of a failed system call, from which a {@link VfioError} is built. */
export interface VfioErrorInfo {
  /** The errno name, e.g. 'EINVAL'. */
  code: string;
  /** The negative errno, as Node's fs errors have it, e.g. -22. */
  errno: number;
  /** The call, e.g. 'open' or 'ioctl(IOMMU_IOAS_MAP)'. */
  syscall: string;
  /** What the call was about: a path, a device name. */
  detail?: string;
  /**
   * For a map call, what it mapped (the hint depends on it): `'cpu'`
   * (process memory: a DmaBuffer), `'bar'` (a BAR's mmap, peer memory under
   * type1) or `'dma-buf'` (peer memory under iommufd).
   */
  memory?: MappedMemory;
}

/** What a failed map call mapped: process memory, a BAR's mmap, or a dma-buf. */
export type MappedMemory = 'cpu' | 'bar' | 'dma-buf';

type Hint = [syscall: RegExp, code: RegExp, hint: string | (() => string), detail?: RegExp, memory?: MappedMemory];

/** @internal /proc/self/status's CapEff: whether bit `bit` (a capability number) is set; false when unreadable. */
export function hasCapability(status: string, bit: number): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/im.exec(status);
  return m !== null && ((BigInt(`0x${m[1]}`) >> BigInt(bit)) & 1n) === 1n;
}

/** @internal CAP_IPC_LOCK's number (linux/capability.h): lock memory, pin it past RLIMIT_MEMLOCK. */
export const CAP_IPC_LOCK = 14;

/**
 * @internal ENOMEM from a map call, for a process whose /proc/self/status is
 * `status`: RLIMIT_MEMLOCK limits pinning only without CAP_IPC_LOCK (type1
 * and iommufd both skip the accounting with it), so the hint says what to
 * check in either case.
 */
export function pinRefusedHint(status: string): string {
  const pinned = /^VmPin:\s*(\d+ kB)$/m.exec(status)?.[1];
  const now = pinned === undefined ? '' : ` (VmPin in /proc/self/status: ${pinned} pinned now)`;
  if (hasCapability(status, CAP_IPC_LOCK)) {
    return (
      'the kernel could not pin or map the memory, and not for RLIMIT_MEMLOCK: this process has CAP_IPC_LOCK, which lifts it; ' +
      `check the system's free memory (MemAvailable in /proc/meminfo), the memory cgroup's limit (memory.max: pinned pages and IOMMU page tables are charged to it), and what is pinned already${now}`
    );
  }
  let limit = '';
  try {
    const line = /^Max locked memory\s+(\S+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'))?.[1];
    if (line !== undefined) limit = `, now ${line === 'unlimited' ? 'unlimited' : `${Number(line) / 1024} KiB`}`;
  } catch {
    // no procfs: the hint still says what to raise
  }
  return `pinning was refused: raise RLIMIT_MEMLOCK (ulimit -l${limit}; it counts every pinned page${now}) or run with CAP_IPC_LOCK`;
}

/** pinRefusedHint for this process. */
function pinRefused(): string {
  let status = '';
  try {
    status = fs.readFileSync('/proc/self/status', 'utf8');
  } catch {
    // no procfs: the hint for a process without the capability
  }
  return pinRefusedHint(status);
}

/** type1's module parameter that caps the mappings of one container. */
const DMA_ENTRY_LIMIT = '/sys/module/vfio_iommu_type1/parameters/dma_entry_limit';

/** ENOSPC from VFIO_IOMMU_MAP_DMA: the container's count of mappings reached type1's dma_entry_limit. */
function dmaEntryLimitHint(): string {
  let now = 'unreadable';
  try {
    now = fs.readFileSync(DMA_ENTRY_LIMIT, 'utf8').trim();
  } catch {
    // no type1 module here (or no sysfs): the hint still names the parameter
  }
  return (
    `the container reached type1's dma_entry_limit, the most mappings it may hold (one per VFIO_IOMMU_MAP_DMA; ` +
    `module parameter vfio_iommu_type1.dma_entry_limit, 65535 by default, now ${now} in ${DMA_ENTRY_LIMIT}, ` +
    `read when the container gets its IOMMU): map fewer, larger ranges (pieces of one DmaPool linked in order map as one), ` +
    `raise the limit before opening the address space, or use the iommufd backend`
  );
}

/** What to check, by system call and error code; the first match is used. */
const HINTS: Hint[] = [
  [
    /^open$/,
    /^ENOENT$/,
    "no /dev/iommu: this kernel has no iommufd (CONFIG_IOMMUFD); use the type1 backend with VFIO's own container, /dev/vfio/vfio",
    /^\/dev\/iommu$/,
  ],
  [/^open$/, /^ENOENT$/, 'the device is not bound to vfio-pci, or VFIO is not loaded (modprobe vfio-pci)', /^\/dev\/vfio\//],
  [/^open$/, /^(EACCES|EPERM)$/, 'permissions on /dev/vfio and /dev/iommu: run as root or give your user the device nodes (a udev rule)'],
  [
    /^open$/,
    /^EBUSY$/,
    'the IOMMU group is in use: another process, or another address space of this one, has it open (the group through a type1 container, or one of its devices through iommufd); close it there first',
    /^\/dev\/vfio\//,
  ],
  [
    /VFIO_GROUP_SET_CONTAINER/,
    /^EPERM$/,
    'the group is not viable: every device in the IOMMU group must be bound to vfio-pci (or no driver)',
  ],
  [
    /VFIO_SET_IOMMU/,
    /^(EINVAL|ENODEV)$/,
    'the IOMMU is off or this type is unsupported: boot with intel_iommu=on (or amd_iommu=on) and check /sys/kernel/iommu_groups',
  ],
  [
    /VFIO_DEVICE_BIND_IOMMUFD/,
    /^EBUSY$/,
    'the device is in use: another process, or another address space of this one, has it open (through its cdev, or its IOMMU group through a type1 container); close it there first',
  ],
  [/(IOMMU_IOAS_MAP|VFIO_IOMMU_MAP_DMA|IOMMU_IOAS_COPY)/, /^ENOMEM$/, pinRefused],
  [/VFIO_IOMMU_MAP_DMA/, /^ENOSPC$/, dmaEntryLimitHint],
  [/(IOMMU_IOAS_MAP|VFIO_IOMMU_MAP_DMA)/, /^(EEXIST|EADDRINUSE)$/, 'that IOVA range is already mapped: unmap it first or map elsewhere'],
  [
    /(IOMMU_IOAS_MAP|VFIO_IOMMU_MAP_DMA|IOMMU_IOAS_COPY)/,
    /^(EINVAL|ERANGE)$/,
    "check that the IOVA, length and address are aligned to the IOMMU page size and that the IOVA lies inside the address space's IOVA ranges",
  ],
  [
    /^ioctl\(IOMMU_IOAS_MAP\)$/,
    /^EFAULT$/,
    "iommufd pins process memory only: a BAR's mmap cannot be pinned, map peer memory through a P2PProvider (dma-buf)",
    undefined,
    'bar',
  ],
  [
    /VFIO_IOMMU_MAP_DMA/,
    /^EFAULT$/,
    "a BAR's mmap is mapped by type1 only while the BAR decodes memory, and not at all by iommufd's compatibility container (/dev/iommu as a container): " +
      'turn memory decoding on, or map peer memory through a P2PProvider under the iommufd backend (dma-buf)',
    undefined,
    'bar',
  ],
  [
    /(IOMMU_IOAS_MAP|VFIO_IOMMU_MAP_DMA)/,
    /^EFAULT$/,
    'the memory could not be pinned for the access asked: a read-only mapping asked for device writes, or memory that is not ordinary process memory (closed, or unmapped meanwhile)',
  ],
  [/IOMMU_IOAS_MAP_FILE/, /^(ENODEV|EBADF|EOPNOTSUPP)$/, 'the file cannot be mapped: iommufd maps memfds and VFIO dma-bufs only'],
  [
    /(IOMMU_IOAS_UNMAP|VFIO_IOMMU_UNMAP_DMA)/,
    /^(ENOENT|EINVAL)$/,
    'nothing is mapped exactly there: an unmap must cover whole mappings, not cut one',
  ],
  [
    /VFIO_DEVICE_FEATURE/,
    /^(ENOTTY|EINVAL|EOPNOTSUPP)$/,
    'this kernel or device does not offer the feature (dma-buf export needs VFIO_PCI_DMABUF and PCI_P2PDMA)',
  ],
  [
    /VFIO_DEVICE_SET_IRQS/,
    /^EINVAL$/,
    'the device is in another interrupt mode (disable that one first), or the vectors lie outside what VFIO_DEVICE_GET_IRQ_INFO reports',
  ],
  [/^mmap$/, /^EINVAL$/, 'the region cannot be mmapped there (not mmap-capable, or the range lies outside its sparse mmap areas)'],
  [/^mmap$/, /^ENOMEM$/, 'no free huge pages: echo N > /proc/sys/vm/nr_hugepages', /MAP_HUGETLB/],
];

/**
 * What to check for a failed call: the hint VfioError appends to its
 * message, or undefined when there is none. `memory` is what a map call
 * mapped: hints meant for one kind of memory are chosen only for it.
 */
export function hintFor(syscall: string, code: string, detail = '', memory?: MappedMemory): string | undefined {
  const hint = HINTS.find(([s, c, , d, m]) => s.test(syscall) && c.test(code) && (!d || d.test(detail)) && (!m || m === memory))?.[2];
  return typeof hint === 'function' ? hint() : hint;
}

/** The message each VfioError was built with, before its hint: what explainMapError builds on. */
const bareMessages = new WeakMap<VfioError, string>();

/**
 * @internal `err` as a map call's error once the caller knows what it
 * mapped: a VfioError is rebuilt with its hint chosen for `memory`, and
 * `where` (which fragment of a list, say) added to its message; anything
 * else is returned as it is.
 */
export function explainMapError(err: unknown, memory: MappedMemory, where?: string): unknown {
  if (!(err instanceof VfioError)) return err;
  const bare = bareMessages.get(err) ?? err.message;
  const e = new VfioError(where === undefined ? bare : `${bare}: ${where}`, {
    code: err.code,
    errno: err.errno,
    syscall: err.syscall,
    detail: err.detail,
    memory,
  });
  e.stack = `${e.name}: ${e.message}${err.stack?.slice(err.stack.indexOf('\n')) ?? ''}`;
  return e;
}

/**
 * A system call of the library failed (an open, an ioctl, an mmap, ...).
 * Shaped like Node's own fs errors: `code` ('EINVAL'), `errno` (-22),
 * `syscall` ('ioctl(IOMMU_IOAS_MAP)'); the message names the call and what it
 * was about, and adds what to check where the cause is usually the same (a
 * device not bound to vfio-pci, a non-viable IOMMU group, RLIMIT_MEMLOCK, ...).
 *
 * @example
 * ```ts
 * try {
 *   space.map(buf);
 * } catch (err) {
 *   if (err instanceof VfioError && err.code === 'ENOMEM') console.error('raise ulimit -l');
 *   else throw err;
 * }
 * ```
 */
export class VfioError extends Error {
  /** The errno name, e.g. 'EINVAL', 'ENOMEM', 'EBUSY'. */
  readonly code: string;
  /** The negative errno, e.g. -22 for EINVAL. */
  readonly errno: number;
  /** The failed call: 'open', 'mmap', 'pread', or 'ioctl(NAME)' with the ioctl's uAPI name. */
  readonly syscall: string;
  /** What the call was about, when known: a path ('/dev/vfio/12'), a device. */
  readonly detail?: string;

  /**
   * Builds the error; the native layer does, with the facts of the failed call.
   *
   * @param message - What failed, e.g. 'ENOMEM: Cannot allocate memory, ioctl(IOMMU_IOAS_MAP)'.
   * @param info - `code`, `errno`, `syscall`, `detail` and, for a map call,
   *   the `memory` it mapped; a hint is appended to the message when one matches.
   */
  constructor(message: string, info: VfioErrorInfo) {
    checkString(message, 'message');
    checkObject(info, 'info');
    checkString(info.code, 'info.code');
    checkInt(info.errno, 'info.errno', -4095, 0);
    checkString(info.syscall, 'info.syscall');
    if (info.detail !== undefined) checkString(info.detail, 'info.detail');
    if (info.memory !== undefined && info.memory !== 'cpu' && info.memory !== 'bar' && info.memory !== 'dma-buf')
      throw new TypeError(
        `info.memory must be 'cpu', 'bar' or 'dma-buf', not ${typeof info.memory === 'string' ? JSON.stringify(info.memory) : kindOf(info.memory)}`,
      );
    const hint = hintFor(info.syscall, info.code, info.detail, info.memory);
    super(hint ? `${message} (${hint})` : message);
    bareMessages.set(this, message);
    this.name = 'VfioError';
    this.code = info.code;
    this.errno = info.errno;
    this.syscall = info.syscall;
    if (info.detail !== undefined) this.detail = info.detail;
  }
}

/**
 * An error of the library's own, not of a system call: an operation that
 * the state of an object does not allow, with a code of the ERR_VFIO_* (or
 * ERR_NVME_*) family, such as `ERR_VFIO_CLOSED` (the object, or its address
 * space, is closed), `ERR_VFIO_NOT_BOUND` (the device is not bound to
 * vfio-pci), `ERR_VFIO_IRQ_BUSY` (another interrupt mode is enabled), or
 * `ETIMEDOUT` (a wait ran out).
 */
export class VfioStateError extends Error {
  /**
   * Made by the library.
   *
   * @param message - What happened and what to do about it.
   * @param code - The machine-readable reason, e.g. 'ERR_VFIO_CLOSED'.
   */
  constructor(
    message: string,
    /** The machine-readable reason, e.g. 'ERR_VFIO_CLOSED'. */
    readonly code: string,
  ) {
    super(checkString(message, 'message'));
    checkString(code, 'code');
    this.name = 'VfioStateError';
  }
}
