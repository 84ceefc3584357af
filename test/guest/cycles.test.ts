/**
 * 2,000 cycles per backend of: open an address space and edu, allocate and
 * map a buffer (anonymous and memfd in turn), unmap it, close everything.
 * Every DMA_EVERY-th cycle also moves bytes through edu (to the device and
 * back, checked), polled or through an MSI vector in turn.
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
import { BackendKind } from '../../lib/iommu/backend';
import { DmaBuffer } from '../../lib/memory';
import { figure } from '../support/figures';
import { BDF, collectGarbage, forEachBackend, openFdCount, pattern, procStatus } from '../support/guest';

const CYCLES = 2000;
const DMA_EVERY = 40;
const SAMPLE_EVERY = 100;
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

forEachBackend('open → map → DMA → unmap → close cycles', (backend) => {
  it(`${CYCLES} cycles leave file descriptors, VmPin, VmLck, listeners and handles at their baseline, with no growth along the way`, async function () {
    this.timeout(20 * 60_000);
    await cycle(backend, 0, true, true); // first use: lazily made objects, the poll timer's first run
    await collectGarbage();
    const baseline = sample();
    const samples: Sample[] = [];
    let leftListening = 0;
    let dmas = 0;
    const started = Date.now();
    for (let i = 1; i <= CYCLES; i++) {
      const dma = i % DMA_EVERY === 0;
      if (dma) dmas++;
      leftListening += await cycle(backend, i, dma, dmas % 2 === 0);
      if (i % SAMPLE_EVERY === 0) samples.push(sample());
    }
    const ms = Date.now() - started;
    await collectGarbage();
    const end = sample();
    const growth = Object.fromEntries(
      METRICS.map((k) => [
        k,
        median(samples.slice(-TREND_SAMPLES).map((s) => s[k])) - median(samples.slice(0, TREND_SAMPLES).map((s) => s[k])),
      ]),
    ) as Record<keyof Sample, number>;
    const grew = METRICS.filter((k) => growth[k] !== 0);
    figure(
      `cycles [${backend}]: ${CYCLES} open → map → unmap → close cycles, ${dmas} with an edu DMA round trip (bytes checked), ` +
        `${(ms / CYCLES).toFixed(1)} ms each (${(ms / 1000).toFixed(0)} s); baseline → end: ${METRICS.map((k) => `${k} ${baseline[k]} → ${end[k]}`).join(', ')}; ` +
        `growth along the run (${samples.length} samples): ${grew.length === 0 ? 'none' : grew.map((k) => `${k} ${growth[k]}`).join(', ')}; ` +
        `listeners left at close: ${leftListening}`,
    );
    assert.deepEqual(end, baseline, 'back at the baseline after the cycles');
    for (const k of METRICS) assert.ok(growth[k] <= 0, `${k} grew by ${growth[k]} along the cycles: ${samples.map((s) => s[k]).join(' ')}`);
    assert.equal(leftListening, 0, 'nothing left listening on a device or vector when it closed');
  });
});
