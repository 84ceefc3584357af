/**
 * 2,000 cycles per backend of: open an address space and edu, allocate and
 * map a buffer (anonymous and memfd in turn), unmap it, close everything.
 * Every DMA_EVERY-th cycle also moves bytes through edu (to the device and
 * back, checked), polled or through an MSI vector in turn. And 50 cycles
 * per backend of an NVMe controller (open: reset, admin and I/O queues;
 * writes at QD8 read back and checked; close), polled and MSI-X in turn: its
 * timers and interrupt watchers are handles that must not outlive it.
 *
 * What the process holds is sampled every SAMPLE_EVERY cycles: open file
 * descriptors (/proc/self/fd), pinned and locked memory (VmPin, VmLck in
 * /proc/self/status), the process's listeners and libuv's active handles.
 * Each must be back at its baseline after the cycles, and must not grow
 * along them (the median of the last samples against that of the first: a
 * trend, not one noisy sample). Each cycle also checks that nothing is left
 * listening on its device and its interrupt vector when it closes them.
 *
 * Why not a DMA in every cycle: edu completes a DMA 100 ms of QEMU's virtual
 * clock after it is started (hw/misc/edu.c arms a timer), so a cycle with an
 * edu round trip takes some 250 ms under TCG, 500 s for 2,000 cycles per
 * backend. A cycle without one takes 45 to 80 ms under TCG (a quiet or a
 * busy host), most of it the kernel's work opening and closing the device
 * (vfio-pci enables, saves, restores and disables it through config
 * accesses that QEMU traps): 2,000 cycles take 1.5 to 3 minutes per backend.
 * The figures printed say how many cycles had a DMA, and how long they took.
 */
import assert from 'node:assert/strict';
import { AddressSpace } from '../../lib/address-space';
import { EduDevice, EDU_DMA_LIMIT } from '../../lib/drivers/edu';
import { IrqVector } from '../../lib/interrupts';
import { BackendKind } from '../../lib/iommu/backend';
import { NvmeController } from '../../lib/drivers/nvme';
import { DmaBuffer } from '../../lib/memory';
import { NVME_BLOCK } from '../support/witness';
import { figure } from '../support/figures';
import { CYCLES_BLOCKS } from '../support/children';
import { BDF, collectGarbage, forEachBackend, openFdCount, pattern, procStatus } from '../support/guest';

const CYCLES = 2000;
const DMA_EVERY = 40;
const SAMPLE_EVERY = 100;
const NVME_CYCLES = 50;
const NVME_SAMPLE_EVERY = 5;
/** Samples at each end of the run whose medians are compared. */
const TREND_SAMPLES = 5;
const BUFFER_BYTES = 4 * 4096;
const DEVICE_EVENTS = ['reset', 'memory-disabled', 'close'];

interface Sample {
  fds: number;
  vmPinKb: number;
  vmLckKb: number;
  listeners: number;
  handles: number;
}

const METRICS: (keyof Sample)[] = ['fds', 'vmPinKb', 'vmLckKb', 'listeners', 'handles'];

function sample(): Sample {
  return {
    fds: openFdCount(),
    vmPinKb: procStatus('VmPin'),
    vmLckKb: procStatus('VmLck'),
    listeners: process.eventNames().reduce((n, e) => n + process.listenerCount(e), 0),
    handles: process.getActiveResourcesInfo().length,
  };
}

/** Lets what a close queued for the next turns of the loop (immediates) run before a sample. */
async function settle(): Promise<void> {
  for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** One cycle; with `dma`, a round trip through edu (through an MSI vector when `irq`). Returns the listeners left at close. */
async function cycle(backend: BackendKind, i: number, dma: boolean, irq: boolean): Promise<number> {
  using space = AddressSpace.open({ backend });
  using edu = EduDevice.open(space, BDF.edu);
  using buffer = DmaBuffer.allocate(BUFFER_BYTES, { kind: i % 2 === 0 ? 'anonymous' : 'memfd' });
  const m = space.map(buffer, { limit: EDU_DMA_LIMIT });
  let left = 0;
  if (dma) {
    const vector = irq ? edu.device.interrupts.enableMsi(1)[0] : undefined;
    const data = pattern(1024, i + 1);
    buffer.bytes.set(data);
    await edu.dmaToDevice(m.iova, 0, data.length, { irq: vector });
    await edu.dmaFromDevice(0, m.iova + 8192n, data.length, { irq: vector });
    assert.deepEqual(buffer.bytes.subarray(8192, 8192 + data.length), data, `cycle ${i}: edu's round trip`);
    left += vector ? vector.listenerCount('interrupt') + vector.listenerCount('close') : 0;
  }
  m.unmap();
  left += DEVICE_EVENTS.reduce((n, e) => n + edu.device.listenerCount(e), 0);
  return left;
}

/** The cycle of an NVMe controller: open (reset, admin and I/O queues), map, QD8 writes read back and checked, unmap, close; the listeners its vectors keep after. */
async function nvmeCycle(backend: BackendKind, i: number): Promise<number> {
  using space = AddressSpace.open({ backend });
  const nvme = await NvmeController.open(space, BDF.nvme, { mode: i % 2 === 0 ? 'polled' : 'interrupt' });
  let vectors: IrqVector[] = [];
  try {
    const ns = nvme.namespace(1);
    const per4k = NVME_BLOCK / ns.blockSize;
    using buffer = DmaBuffer.allocate(16 * NVME_BLOCK);
    const m = space.map(buffer);
    const data = pattern(8 * NVME_BLOCK, 5000 + i);
    buffer.bytes.set(data);
    const at = (k: number): { mapping: typeof m; offset: number } => ({ mapping: m, offset: k * NVME_BLOCK });
    await Promise.all(Array.from({ length: 8 }, (_, k) => ns.write((CYCLES_BLOCKS + k) * per4k, per4k, at(k))));
    await Promise.all(Array.from({ length: 8 }, (_, k) => ns.read((CYCLES_BLOCKS + k) * per4k, per4k, at(8 + k))));
    assert.deepEqual(buffer.bytes.subarray(8 * NVME_BLOCK), data, `nvme cycle ${i}: blocks written, read back`);
    m.unmap();
    vectors = [...nvme.interruptVectors];
  } finally {
    await nvme.close();
  }
  return vectors.reduce((n, v) => n + v.listenerCount('interrupt') + v.listenerCount('close'), 0);
}

interface Run {
  baseline: Sample;
  end: Sample;
  samples: Sample[];
  /** Median of the last TREND_SAMPLES samples minus that of the first, per metric. */
  growth: Record<keyof Sample, number>;
  ms: number;
  leftListening: number;
}

/** Runs `cycle` `n` times (after one to warm up), sampling every `every` cycles. */
async function run(n: number, every: number, cycle: (i: number) => Promise<number>): Promise<Run> {
  await cycle(0); // first use: lazily made objects, the poll timer's first run
  await collectGarbage();
  const baseline = sample();
  const samples: Sample[] = [];
  let leftListening = 0;
  const started = Date.now();
  for (let i = 1; i <= n; i++) {
    leftListening += await cycle(i);
    if (i % every === 0) {
      await settle();
      samples.push(sample());
    }
  }
  const ms = Date.now() - started;
  await collectGarbage();
  const end = sample();
  const trend = (k: keyof Sample, from: Sample[]): number => median(from.map((x) => x[k]));
  const growth = Object.fromEntries(
    METRICS.map((k) => [k, trend(k, samples.slice(-TREND_SAMPLES)) - trend(k, samples.slice(0, TREND_SAMPLES))]),
  ) as Record<keyof Sample, number>;
  return { baseline, end, samples, growth, ms, leftListening };
}

/** The run's figures, one line. */
function describeRun(r: Run, n: number): string {
  const grew = METRICS.filter((k) => r.growth[k] !== 0);
  return (
    `${(r.ms / n).toFixed(1)} ms each (${(r.ms / 1000).toFixed(0)} s); baseline → end: ${METRICS.map((k) => `${k} ${r.baseline[k]} → ${r.end[k]}`).join(', ')}; ` +
    `growth along the run (${r.samples.length} samples): ${grew.length === 0 ? 'none' : grew.map((k) => `${k} ${r.growth[k]}`).join(', ')}; ` +
    `listeners left at close: ${r.leftListening}`
  );
}

function assertFlat(r: Run): void {
  assert.deepEqual(r.end, r.baseline, 'back at the baseline after the cycles');
  for (const k of METRICS)
    assert.ok(r.growth[k] <= 0, `${k} grew by ${r.growth[k]} along the cycles: ${r.samples.map((x) => x[k]).join(' ')}`);
  assert.equal(r.leftListening, 0, 'nothing left listening on a device or vector when it closed');
}

forEachBackend('open → map → DMA → unmap → close cycles', (backend) => {
  it(`${CYCLES} cycles of edu leave file descriptors, VmPin, VmLck, listeners and handles at their baseline, with no growth along the way`, async function () {
    this.timeout(20 * 60_000);
    let dmas = 0;
    const r = await run(CYCLES, SAMPLE_EVERY, (i) => {
      const dma = i === 0 || i % DMA_EVERY === 0;
      if (dma && i > 0) dmas++;
      return cycle(backend, i, dma, i === 0 || dmas % 2 === 0);
    });
    figure(
      `cycles [${backend}]: ${CYCLES} edu open → map → unmap → close cycles, ${dmas} with an edu DMA round trip (bytes checked), ${describeRun(r, CYCLES)}`,
    );
    assertFlat(r);
  });

  it(`${NVME_CYCLES} cycles of an NVMe controller (polled and MSI-X in turn, QD8 written and read back) leave them at their baseline too`, async function () {
    this.timeout(20 * 60_000);
    const r = await run(NVME_CYCLES, NVME_SAMPLE_EVERY, (i) => nvmeCycle(backend, i));
    figure(`cycles [${backend}]: ${NVME_CYCLES} NVMe controller open → map → I/O → unmap → close cycles, ${describeRun(r, NVME_CYCLES)}`);
    assertFlat(r);
  });
});
