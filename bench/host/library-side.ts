/**
 * The library's side of the host lane: run by run.ts as a child process
 * under LD_PRELOAD=fake-kernel.so, it opens the fake device through the
 * library's public API and times each metric (map4k, map4k.live1000,
 * link1024, the mmio rows, irq.event, irq.trigger.p50), printing one JSON
 * line {"id","ns":[...]} per metric and {"done":true} at the end: CPU ns
 * of the process per operation, but for irq.trigger.p50, the median
 * latency (wall time) of each sample.
 *
 *   node dist/bench/host/library-side.js sysfs=DIR bdf=BDF samples=N warmup_ms=N map=N link=N mmio=N irq_event=N irq_trigger=N [same_process_c=ADDON]
 *
 * With same_process_c, the DMA metrics (map4k, map4k.live1000, link1024)
 * also time the C side's same operations in this process, in turns with
 * the library's (c-same-process.cc), and print them as "cNs" beside "ns".
 *
 * Around every metric it reads the fake kernel's counters and fails unless
 * exactly the ioctls that many operations make were made, none failing:
 * a run that missed the shim, or timed something else, exits non-zero.
 */
import { AddressSpace, DmaBuffer, IrqVector, PAGE_SIZE, PhysList, Region } from '../../lib';
import { summarize } from '../stats';
import { armInterrupts, checkCalls, KernelStats, readStats } from './kernel-stats';
import { LINK_FRAGMENTS, LIVE_MAPPINGS, parsePlan, Plan } from './plan';

/** The edu-like device's identification register, BAR0 + 0 (fake-device.h). */
const BAR0_IDENT = 0x010000ed;
const READ_AT = 0x40;
const WRITE_AT = 0x80;
const MSIX = 2;

type Calls = Record<string, number>;

/** The same-process C side (c-same-process.cc): the C loop's DMA operations on an IOAS of its own; each timing returns CPU ns per operation. */
interface SameProcessC {
  open(): void;
  map4k(n: number): number;
  setLive(live: boolean): void;
  live1000(n: number): number;
  link1024(n: number): number;
}

/** The word run.ts adds for this side alone: where the same-process C side's addon is. */
const SAME_PROCESS_WORD = 'same_process_c=';

/** Loads and opens the same-process C side at `file`. */
function loadSameProcessC(file: string): SameProcessC {
  const m = { exports: {} as SameProcessC };
  process.dlopen(m, file);
  m.exports.open();
  return m.exports;
}

function emit(id: string, ns: number[], cNs?: number[]): void {
  process.stdout.write(`${JSON.stringify(cNs ? { id, ns, cNs } : { id, ns })}\n`);
}

function times(calls: Calls, n: number): Calls {
  return Object.fromEntries(Object.entries(calls).map(([k, v]) => [k, v * n]));
}

/** The ioctls `run` must make per call, the loopback signals and the armed interrupts. */
interface Expect {
  calls: Calls;
  signals?: number;
  fires?: number;
}

function check(id: string, before: KernelStats, runs: number, expect: Expect): void {
  const after = readStats();
  checkCalls(id, before, after, times(expect.calls, runs));
  for (const what of ['signals', 'fires'] as const) {
    const got = after[what] - before[what];
    const want = (expect[what] ?? 0) * runs;
    if (got !== want) throw new Error(`${id}: the fake kernel made ${got} eventfd ${what}, expected ${want}`);
  }
}

/** CPU time of the process so far, in ns (every thread: what getrusage counts). */
function cpuNs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
}

/**
 * Runs `run` untimed for the warm-up time (at least twice), then `samples`
 * times timed: CPU ns per operation, `ops` operations per run. CPU time, not
 * wall time, so that other load on the machine does not count.
 *
 * With `c` (the same-process C side's run of the same operations, returning
 * its CPU ns per operation) the two take turns, warm-up included, each going
 * first in every other sample; the C samples are emitted beside the
 * library's (`cNs`), pair by pair.
 */
function measure(plan: Plan, id: string, ops: number, expect: Expect, run: () => void, c?: () => number): void {
  const before = readStats();
  let runs = 0;
  for (const until = performance.now() + plan.warmupMs; runs < 2 || performance.now() < until; runs++) {
    run();
    c?.();
  }
  const ns: number[] = [];
  const cNs: number[] = [];
  const timed = (): number => {
    const t0 = cpuNs();
    run();
    return (cpuNs() - t0) / ops;
  };
  for (let i = 0; i < plan.samples; i++, runs++) {
    if (c && i % 2 === 1) cNs.push(c());
    ns.push(timed());
    if (c && i % 2 === 0) cNs.push(c());
  }
  check(id, before, c ? 2 * runs : runs, expect);
  emit(id, ns, c ? cNs : undefined);
}

/** The same for samples that measure themselves (ns per operation). */
async function measureAsync(plan: Plan, id: string, expect: Expect, sample: () => Promise<number>): Promise<void> {
  const before = readStats();
  let runs = 0;
  for (const until = performance.now() + plan.warmupMs; runs < 2 || performance.now() < until; runs++) await sample();
  const ns: number[] = [];
  for (let i = 0; i < plan.samples; i++, runs++) ns.push(await sample());
  check(id, before, runs, expect);
  emit(id, ns);
}

function dmaMetrics(plan: Plan, space: AddressSpace, c: SameProcessC | undefined): void {
  const n = plan.batch.map;
  const pair = { calls: { IOMMU_IOAS_MAP: n, IOMMU_IOAS_UNMAP: n } };
  const buffer = DmaBuffer.allocate(PAGE_SIZE);
  space.map(buffer).unmap(); // the first map reads the IOVA ranges for the allocator: not timed, not counted
  const mapPairs = (): void => {
    for (let i = 0; i < n; i++) space.map(buffer).unmap();
  };
  measure(plan, 'map4k', n, pair, mapPairs, c && (() => c.map4k(n)));

  const others = Array.from({ length: LIVE_MAPPINGS }, () => DmaBuffer.allocate(PAGE_SIZE));
  const live = others.map((b) => space.map(b));
  if (readStats().liveAreas !== LIVE_MAPPINGS)
    throw new Error(`map4k.live1000: the fake kernel holds ${readStats().liveAreas} mappings, expected ${LIVE_MAPPINGS}`);
  c?.setLive(true);
  measure(plan, 'map4k.live1000', n, pair, mapPairs, c && (() => c.live1000(n)));
  c?.setLive(false);
  live.forEach((m) => m.unmap());
  others.forEach((b) => b.close());
  buffer.close();

  const links = plan.batch.link;
  const pieces = Array.from({ length: LINK_FRAGMENTS }, () => DmaBuffer.allocate(PAGE_SIZE));
  const list = PhysList.cpu(pieces.map((buffer) => ({ buffer })));
  const window = space.reserve(BigInt(LINK_FRAGMENTS) * PAGE_SIZE);
  measure(
    plan,
    'link1024',
    links * LINK_FRAGMENTS,
    { calls: { IOMMU_IOAS_MAP: links * LINK_FRAGMENTS, IOMMU_IOAS_UNMAP: links } },
    () => {
      for (let i = 0; i < links; i++) window.link(list).unmap();
    },
    c && (() => c.link1024(links)),
  );
  window.release();
  pieces.forEach((b) => b.close());
}

// One loop per access, each its own function so that every call site sees one method.
const MMIO_LOOPS: Record<string, (r: Region, n: number) => number> = {
  'mmio.read8': (r, n) => {
    let x = 0;
    for (let i = 0; i < n; i++) x ^= r.read8(READ_AT);
    return x;
  },
  'mmio.read16': (r, n) => {
    let x = 0;
    for (let i = 0; i < n; i++) x ^= r.read16(READ_AT);
    return x;
  },
  'mmio.read32': (r, n) => {
    let x = 0;
    for (let i = 0; i < n; i++) x ^= r.read32(READ_AT);
    return x;
  },
  'mmio.read64': (r, n) => {
    let x = 0n;
    for (let i = 0; i < n; i++) x = r.read64(READ_AT);
    return Number(x & 1n);
  },
  'mmio.write8': (r, n) => {
    for (let i = 0; i < n; i++) r.write8(WRITE_AT, 0x5a);
    return 0;
  },
  'mmio.write16': (r, n) => {
    for (let i = 0; i < n; i++) r.write16(WRITE_AT, 0x5aa5);
    return 0;
  },
  'mmio.write32': (r, n) => {
    for (let i = 0; i < n; i++) r.write32(WRITE_AT, 0x5aa5a55a);
    return 0;
  },
  'mmio.write64': (r, n) => {
    for (let i = 0; i < n; i++) r.write64(WRITE_AT, 0x5aa5a55a5aa5a55an);
    return 0;
  },
};

let sink = 0;

function mmioMetrics(plan: Plan, bar: Region): void {
  if (!bar.mapped) throw new Error("BAR0 is not mmap'd: the Region would go through pread/pwrite");
  const ident = bar.read32(0);
  if (ident !== BAR0_IDENT) throw new Error(`BAR0 + 0 reads 0x${ident.toString(16)}, not the fake device's 0x${BAR0_IDENT.toString(16)}`);
  const n = plan.batch.mmio;
  for (const [id, loop] of Object.entries(MMIO_LOOPS)) {
    measure(plan, id, n, { calls: {} }, () => {
      sink ^= loop(bar, n);
    });
  }
  const back = bar.read64(WRITE_AT);
  if (back !== 0x5aa5a55a5aa5a55an) throw new Error(`BAR0 + 0x${WRITE_AT.toString(16)} reads 0x${back.toString(16)} after the writes`);
}

/**
 * CPU time per event: the fake kernel writes the eventfd each time the
 * event loop enters epoll_wait (armInterrupts), `n` times; the listener
 * counts them, one per turn of the loop.
 */
function eventSample(vector: IrqVector, fd: number, n: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let events = 0;
    let counted = 0;
    const onInterrupt = (count: number): void => {
      events++;
      counted += count;
      if (events < n) return;
      const cpu = cpuNs() - start;
      vector.off('interrupt', onInterrupt);
      if (counted !== n) reject(new Error(`irq.event: ${n} events counted ${counted}: interrupts were merged`));
      else resolve(cpu / n);
    };
    vector.on('interrupt', onInterrupt);
    armInterrupts(fd, n);
    const start = cpuNs();
  });
}

/** The median latency of `n` triggers, each made once the previous one reached the listener. */
function triggerSample(vector: IrqVector, n: number): Promise<number> {
  return new Promise((resolve) => {
    const latencies: number[] = [];
    let t0 = 0n;
    const onInterrupt = (): void => {
      latencies.push(Number(process.hrtime.bigint() - t0));
      if (latencies.length < n) {
        t0 = process.hrtime.bigint();
        vector.trigger();
        return;
      }
      vector.off('interrupt', onInterrupt);
      resolve(summarize(latencies).median);
    };
    vector.on('interrupt', onInterrupt);
    t0 = process.hrtime.bigint();
    vector.trigger();
  });
}

async function irqMetrics(plan: Plan, vector: IrqVector): Promise<void> {
  const held = readStats().eventfds.find((e) => e.index === MSIX && e.vector === vector.vector);
  if (!held) throw new Error('the fake device holds no eventfd for MSI-X vector 0 after enableMsix');
  const events = plan.batch.irqEvent;
  await measureAsync(plan, 'irq.event', { calls: {}, fires: events }, () => eventSample(vector, held.fd, events));
  const triggers = plan.batch.irqTrigger;
  await measureAsync(plan, 'irq.trigger.p50', { calls: { VFIO_DEVICE_SET_IRQS: triggers }, signals: triggers }, () =>
    triggerSample(vector, triggers),
  );
}

async function main(argv: string[]): Promise<void> {
  const plan = parsePlan(argv.filter((a) => !a.startsWith(SAME_PROCESS_WORD)));
  const addon = argv.find((a) => a.startsWith(SAME_PROCESS_WORD))?.slice(SAME_PROCESS_WORD.length);
  readStats(); // fails first when the shim is missing
  using space = AddressSpace.open({ backend: 'iommufd', sysfs: plan.sysfs });
  const device = space.openDevice(plan.bdf);
  const opened = readStats().opens;
  if (opened.iommufd < 1 || opened.device < 1) throw new Error(`the library did not open the fake nodes: ${JSON.stringify(opened)}`);
  dmaMetrics(plan, space, addon ? loadSameProcessC(addon) : undefined);
  mmioMetrics(plan, device.bar(0));
  const [vector] = device.interrupts.enableMsix(1);
  await irqMetrics(plan, vector);
  device.interrupts.disable();
  process.stdout.write(`${JSON.stringify({ done: true, sink: sink & 1 })}\n`);
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`library-side: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
