/**
 * The fake kernel's counters (bench/host/fake-kernel.cc), read by opening
 * /dev/fake-kernel/stats: a path that exists only while the shim is
 * preloaded. The host lane checks them around every measurement, so a run
 * that did not go through the shim, or did other calls than it timed, fails.
 */
import * as fs from 'node:fs';

/** Opening it returns the counters as JSON; it exists only while the shim is preloaded. */
export const STATS_PATH = '/dev/fake-kernel/stats';
const FIRE_PATH = '/dev/fake-kernel/fire';

/** An eventfd a fake device holds for one interrupt vector. */
export interface HeldEventfd {
  /** The device's fd. */
  device: number;
  /** IRQ index (2: MSI-X). */
  index: number;
  vector: number;
  /** The eventfd as its owner handed it to VFIO_DEVICE_SET_IRQS. */
  fd: number;
}

/** The fake kernel's counters since the process started. */
export interface KernelStats {
  /** Whether each faked ioctl also made a real system call (FAKE_KERNEL_SYSCALL=1). */
  syscall: boolean;
  /** Fake device nodes opened, by kind (iommufd, container, group, device). */
  opens: Record<string, number>;
  /** Faked ioctls, by name (IOMMU_IOAS_MAP...). */
  calls: Record<string, number>;
  /** Those of them that failed, by name. */
  failures: Record<string, number>;
  /** Eventfd writes of VFIO's loopback trigger. */
  signals: number;
  /** Eventfd writes of armed interrupts (armInterrupts). */
  fires: number;
  /** Mappings alive in every IOAS and container. */
  liveAreas: number;
  eventfds: HeldEventfd[];
}

/** The counters now; an error saying so when the shim is not preloaded. */
export function readStats(): KernelStats {
  let text: string;
  try {
    text = fs.readFileSync(STATS_PATH, 'utf8');
  } catch (err) {
    throw new Error(`the fake kernel is not in use (${STATS_PATH}: ${(err as Error).message}): run under LD_PRELOAD=fake-kernel.so`);
  }
  return JSON.parse(text) as KernelStats;
}

/**
 * Arms `count` interrupts on the eventfd the fake device holds for `eventfd`
 * (an fd as handed to VFIO_DEVICE_SET_IRQS): each of the process's next
 * `count` epoll_wait calls first writes 1 to it, as a device interrupting
 * whenever the event loop goes to wait.
 */
export function armInterrupts(eventfd: number, count: number): void {
  fs.closeSync(fs.openSync(`${FIRE_PATH}/${eventfd}/${count}`, 'r'));
}

/** `after - before` for each ioctl name in either. */
export function callDelta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const d = (after[name] ?? 0) - (before[name] ?? 0);
    if (d !== 0) out[name] = d;
  }
  return out;
}

/**
 * Throws unless exactly the `expected` ioctls were made between two reads of
 * the counters (each name that many times, no other name) and none failed.
 */
export function checkCalls(what: string, before: KernelStats, after: KernelStats, expected: Record<string, number>): void {
  const calls = callDelta(before.calls, after.calls);
  const failures = callDelta(before.failures, after.failures);
  const want = Object.fromEntries(Object.entries(expected).filter(([, n]) => n !== 0));
  const show = (o: Record<string, number>): string => JSON.stringify(o);
  if (show(sorted(calls)) !== show(sorted(want))) {
    throw new Error(`${what}: the fake kernel saw ${show(sorted(calls))}, expected ${show(sorted(want))}`);
  }
  if (Object.keys(failures).length > 0) throw new Error(`${what}: ioctls failed in the fake kernel: ${show(failures)}`);
}

function sorted(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}
