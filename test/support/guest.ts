/**
 * What guest tests share: the devices' addresses, the IOMMU backend matrix
 * and the finer matrix of IOMMU modes (the kernel's VFIO selftests' five) of
 * the kernel they run on, and small helpers. Every test runs over every
 * backend (the core DMA and phys_list tests over every mode); where a kernel
 * cannot offer one, that cell is a test that asserts the failure.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { AddressSpace, AddressSpaceOptions } from '../../lib/address-space';
import { EduDevice } from '../../lib/drivers/edu';
import { BackendKind } from '../../lib/iommu/backend';
import { IOMMUFD_CONTAINER_PATH, Type1Flavour } from '../../lib/iommu/type1';

if (process.env.NODE_VFIO_GUEST !== '1') {
  throw new Error('the guest tests need VFIO: they run inside the test VM (npm test, or npx node-vfio vm run -- ...)');
}

export const KERNEL = process.env.NODE_VFIO_KERNEL === 'debian' ? 'debian' : 'custom';
/** The major version of the QEMU that runs this guest (the harness says which). */
export const QEMU_MAJOR = Number(/^(\d+)\./.exec(process.env.NODE_VFIO_QEMU_VERSION ?? '')?.[1] ?? 0);
export const BDF = { edu: '0000:00:03.0', ivshmem: '0000:00:04.0', nvme: '0000:00:05.0' } as const;

export interface Cell {
  backend: BackendKind;
  /** Why this kernel cannot offer the backend; undefined when it can. */
  absent?: string;
}

const NO_IOMMUFD = KERNEL === 'debian' ? "Debian's stock kernel is built without CONFIG_IOMMUFD" : undefined;

export const MATRIX: Cell[] = [{ backend: 'iommufd', absent: NO_IOMMUFD }, { backend: 'type1' }];

/** How opening an address space fails on a kernel without iommufd (no /dev/iommu, for its IOAS or as a container). */
function assertNoIommufd(options: AddressSpaceOptions): void {
  assert.throws(() => AddressSpace.open(options), {
    name: 'VfioError',
    code: 'ENOENT',
    errno: -2,
    syscall: 'open',
    detail: '/dev/iommu',
    message: /\/dev\/iommu.*no iommufd/,
  });
}

/** describe() per backend; for a backend the kernel lacks, one test asserting how opening fails. */
export function forEachBackend(title: string, body: (backend: BackendKind) => void): void {
  for (const cell of MATRIX) {
    describe(`${title} [${cell.backend}]`, () => {
      if (cell.absent) {
        it(`fails clearly: ${cell.absent}`, () => assertNoIommufd({ backend: cell.backend }));
        return;
      }
      body(cell.backend);
    });
  }
}

/**
 * One IOMMU mode of the kernel's VFIO selftests
 * (tools/testing/selftests/vfio/lib/iommu.c): which backend, container and
 * type1 interface serve the address space.
 */
export interface IommuMode {
  /** The selftests' name of the mode. */
  name: 'iommufd' | 'vfio_type1v2_iommu' | 'vfio_type1_iommu' | 'iommufd_compat_type1v2' | 'iommufd_compat_type1';
  /** The library's backend. */
  backend: BackendKind;
  /** The type1 interface, for the type1 modes. */
  type1?: Type1Flavour;
  /** iommufd serves it: the iommufd backend, or iommufd's compatibility container. */
  byIommufd: boolean;
  /** What {@link AddressSpace.open} takes for it. */
  options: AddressSpaceOptions;
  /** Why this kernel cannot offer the mode; undefined when it can. */
  absent?: string;
}

/** The five modes, as the selftests list them, on the kernel the tests run on. */
export const IOMMU_MODES: IommuMode[] = [
  { name: 'iommufd', backend: 'iommufd', byIommufd: true, options: { backend: 'iommufd' }, absent: NO_IOMMUFD },
  { name: 'vfio_type1v2_iommu', backend: 'type1', type1: 'v2', byIommufd: false, options: { backend: 'type1', type1: 'v2' } },
  { name: 'vfio_type1_iommu', backend: 'type1', type1: 'v1', byIommufd: false, options: { backend: 'type1', type1: 'v1' } },
  {
    name: 'iommufd_compat_type1v2',
    backend: 'type1',
    type1: 'v2',
    byIommufd: true,
    options: { backend: 'type1', container: IOMMUFD_CONTAINER_PATH, type1: 'v2' },
    absent: NO_IOMMUFD,
  },
  {
    name: 'iommufd_compat_type1',
    backend: 'type1',
    type1: 'v1',
    byIommufd: true,
    options: { backend: 'type1', container: IOMMUFD_CONTAINER_PATH, type1: 'v1' },
    absent: NO_IOMMUFD,
  },
];

/** describe() per IOMMU mode; for a mode the kernel lacks, one test asserting how opening fails. */
export function forEachIommuMode(title: string, body: (mode: IommuMode) => void): void {
  for (const mode of IOMMU_MODES) {
    describe(`${title} [${mode.name}]`, () => {
      if (mode.absent) {
        it(`fails clearly: ${mode.absent}`, () => assertNoIommufd(mode.options));
        return;
      }
      body(mode);
    });
  }
}

/** Random bytes from a seeded generator (reproducible failures). */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Kernel log lines written since `since` (a /dev/kmsg reader). */
export function kernelLogSince(mark: string): string {
  const log = readKmsg();
  const at = log.lastIndexOf(mark);
  return at < 0 ? log : log.slice(at);
}

/**
 * What the Intel IOMMU driver prints for a fault (drivers/iommu/intel/dmar.c,
 * dmar_fault): each printed line passed its rate limit, and the one that
 * opened the current window is among them.
 */
const FAULT_LINE = /DMAR: DRHD: handling fault status|DMAR: \[(DMA|INTR-REMAP) |dmar_fault: \d+ callbacks suppressed/;

/** The rate limit's window: DEFAULT_RATELIMIT_INTERVAL (5 s), and a margin over a jiffy. */
const FAULT_WINDOW_USEC = 5_200_000;

/**
 * The IOMMU driver logs faults under a rate limit (10 per 5 s window, shared
 * by all faults; a window opens with a fault that is printed): a test that
 * checks a fault is logged waits until the window of the last printed fault
 * is surely over, timed by the kernel log's own clock (no wait when the
 * last fault is older than that).
 */
export async function waitFaultLogQuota(): Promise<void> {
  const mark = markKernelLog('fault-quota');
  let now: number | undefined;
  let lastFault: number | undefined;
  for (const r of readKmsgRecords()) {
    if (r.message.startsWith(mark)) now = r.usec;
    else if (FAULT_LINE.test(r.message)) lastFault = r.usec;
  }
  assert.ok(now !== undefined, 'the kernel log holds the mark just written');
  const wait = lastFault === undefined ? 0 : lastFault + FAULT_WINDOW_USEC - now;
  if (wait > 0) await new Promise((r) => setTimeout(r, Math.ceil(wait / 1000)));
}

export function markKernelLog(tag: string): string {
  const mark = `node-vfio-mark-${tag}-${Date.now()}`;
  fs.writeFileSync('/dev/kmsg', `${mark}\n`);
  return mark;
}

function readKmsg(): string {
  return readKmsgRecords()
    .map((r) => r.message)
    .join('');
}

/** The kernel log's records: when each was logged (µs, the log's clock) and its text. */
function readKmsgRecords(): { usec: number; message: string }[] {
  const fd = fs.openSync('/dev/kmsg', fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const records: { usec: number; message: string }[] = [];
  const buf = Buffer.alloc(8192);
  try {
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') break;
        if (code === 'EPIPE') continue; // overwritten records
        throw err;
      }
      // "priority,sequence,usec,flags;message\n" and continuation lines
      const record = buf.subarray(0, n).toString();
      const semi = record.indexOf(';');
      records.push({ usec: Number(record.slice(0, semi).split(',')[2]), message: record.slice(semi + 1) });
    }
  } finally {
    fs.closeSync(fd);
  }
  return records;
}

export function procStatus(field: 'VmPin' | 'VmLck' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : 0;
}

export function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

export function mapsContain(address: bigint): boolean {
  const hexAddr = address.toString(16);
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .some((l) => l.startsWith(`${hexAddr}-`));
}

export async function collectGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  assert.ok(gc, 'run with --expose-gc');
  for (let i = 0; i < 6; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
}

/** ivshmem's backing file on the host; the guest reads and writes it through 9p (served by the host). */
export function ivshmemHostFile(): string {
  const f = process.env.NODE_VFIO_IVSHMEM_FILE;
  assert.ok(f, 'NODE_VFIO_IVSHMEM_FILE is set by the harness');
  return f;
}

export function readIvshmemHost(offset: number, length: number): Uint8Array {
  const fd = fs.openSync(ivshmemHostFile(), 'r');
  try {
    const b = Buffer.alloc(length);
    fs.readSync(fd, b, 0, length, offset);
    return new Uint8Array(b);
  } finally {
    fs.closeSync(fd);
  }
}

export function writeIvshmemHost(offset: number, data: Uint8Array): void {
  const fd = fs.openSync(ivshmemHostFile(), 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, offset);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** An address space (of a backend, or an IOMMU mode) with edu open in it, for the tests of one describe(); closed after them. */
export function eduFixture(backend: BackendKind | IommuMode): { readonly space: AddressSpace; readonly edu: EduDevice } {
  const fixture = {} as { space: AddressSpace; edu: EduDevice };
  before(() => {
    fixture.space = AddressSpace.open(typeof backend === 'string' ? { backend } : backend.options);
    fixture.edu = EduDevice.open(fixture.space, BDF.edu);
  });
  after(() => fixture.space.close());
  return fixture;
}
