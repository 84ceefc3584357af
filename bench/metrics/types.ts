/**
 * What a benchmark metric is: the addon's side (through the library's
 * public API), the C program's side (a spec native-bench runs with the same
 * system calls), an optional JavaScript-loop side, and the target the issue
 * sets (if any).
 */
import type { AddressSpace, BackendKind, VfioPciDevice } from '../../lib';

/** The addon's side of one metric, ready to run. */
export interface Prepared {
  /**
   * One sample: `Metric.per` operations, timed around the call; asynchronous
   * work resolves to the nanoseconds it measured itself.
   */
  run(): void | Promise<number>;
  close(): void | Promise<void>;
}

export interface AddonPrepared extends Prepared {
  /** Fields of the C spec only the addon's run can tell (the IOVA its allocator picked). */
  cSpec: Record<string, string | number>;
}

export interface BenchContext {
  space: AddressSpace;
  /** A device opened and attached in this address space at the start of the block. */
  device(bdf: string): VfioPciDevice;
  /** Closes it, for a driver that opens the device itself. */
  closeDevice(bdf: string): void;
}

export interface Target {
  /** addon / C must be at most this. */
  maxRatio: number;
  /** The JavaScript loop must take at least this many times the addon's time. */
  minSpeedupOverJsLoop?: number;
}

export interface Metric {
  /** Unique, e.g. 'map.iommufd.4KiB'. */
  id: string;
  label: string;
  backend: BackendKind;
  /** PCI addresses to open and attach (both sides). */
  devices: readonly string[];
  /** None: a number to report, not to meet. */
  target?: Target;
  /** Timed samples per round and side. */
  samples: number;
  /** Untimed runs before them. */
  warmup: number;
  /** Operations per sample (the results are per operation). */
  per: number;
  /** The C spec: op and its parameters (id, samples and warmup are added). */
  cSpec: Record<string, string | number>;
  addon(ctx: BenchContext): AddonPrepared | Promise<AddonPrepared>;
  /** The same work as a loop of single calls in JavaScript. */
  jsLoop?(ctx: BenchContext): Prepared;
  /**
   * The C side drives the device through the kernel's own driver instead
   * (native-bench with BACKEND none), bound to it for that run; `spec`
   * completes the C spec once it is bound (the block device's path).
   */
  kernelDriver?: { bdf: string; driver: string; spec(): Record<string, string | number> };
  /** Also report operations per second (1 / the time per operation). */
  perSecond?: boolean;
  /** Bytes one operation moves: the row also reports throughput. */
  bytesPerOp?: number;
  /**
   * Another way to do the same work through the library, measured in the
   * same rounds instead of a C side (the row is a 'pair': the addon side
   * against this one, e.g. a direct P2P path against a bounce through CPU memory).
   */
  versus?: { label: string; prepare(ctx: BenchContext): Prepared | Promise<Prepared> };
  /**
   * What the row's figures stand for in an emulated guest (bench/report.ts
   * says it in the table): 'ratio', the default, the addon ÷ C ratio, only
   * diagnostic under TCG (JavaScript pays 90-200× there, kernel code 20-40×);
   * 'device', a device path's throughput (the default with `perSecond`);
   * 'kernel', system calls saved for the same work, which the C side shows too;
   * 'pair', two paths of the library for the same work (see `versus`), no C side.
   */
  figure?: 'ratio' | 'device' | 'kernel' | 'pair';
}

export const BDF = { edu: '0000:00:03.0', ivshmem: '0000:00:04.0', nvme: '0000:00:05.0' } as const;
