/**
 * Interrupts as events, proven by effect and counted exactly: edu's
 * factorial-done and DMA-done interrupts over MSI and over INTx, an IRQ
 * storm that loses nothing, nvme's MSI-X vectors enabled, changed and
 * stormed, and everything torn down with the device. /proc/interrupts (the
 * kernel's own count of the host handler's runs) is the outside witness.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { AddressSpace } from '../../lib/address-space';
import { EduDevice, EDU_DMA_LIMIT, EDU_IRQ_DMA, EDU_IRQ_FACTORIAL } from '../../lib/drivers/edu';
import { DeviceInterrupts, IrqIndex, IrqVector } from '../../lib/interrupts';
import { DmaBuffer } from '../../lib/memory';
import { BDF, forEachBackend, openFdCount, pattern } from '../support/guest';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How long to watch for an interrupt that must not come. */
const QUIET_MS = 300;

/** n! modulo 2^32, as edu computes it. */
function factorial(n: number): number {
  let r = 1;
  for (let i = 2; i <= n; i++) r = Math.imul(r, i) >>> 0;
  return r;
}

/** The kernel's count of an interrupt line, by its action name (e.g. 'vfio-msi[0](0000:00:03.0)'); undefined when absent. */
function procInterrupts(action: string): number | undefined {
  const [header, ...lines] = fs.readFileSync('/proc/interrupts', 'utf8').split('\n');
  const cpus = header.trim().split(/\s+/).length;
  const line = lines.find((l) => l.split(/[\s,]+/).includes(action));
  if (!line) return undefined;
  return line
    .trim()
    .split(/\s+/)
    .slice(1, 1 + cpus)
    .reduce((sum, n) => sum + Number(n), 0);
}

const eduMsi = `vfio-msi[0](${BDF.edu})`;
const eduIntx = `vfio-intx(${BDF.edu})`;
const nvmeMsix = (i: number): string => `vfio-msix[${i}](${BDF.nvme})`;

/** Resolves once cond() holds; fails after timeoutMs. */
async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Records every 'interrupt' event's count. */
function record(v: IrqVector): number[] {
  const seen: number[] = [];
  v.on('interrupt', (n: number) => seen.push(n));
  return seen;
}

forEachBackend('interrupts', (backend) => {
  let space: AddressSpace;
  let edu: EduDevice;
  let irqs: DeviceInterrupts;
  beforeEach(() => {
    space = AddressSpace.open({ backend });
    edu = EduDevice.open(space, BDF.edu);
    irqs = edu.device.interrupts;
  });
  afterEach(() => space.close());

  it("reports edu's IRQ indexes and refuses bad arguments before any ioctl", () => {
    assert.deepEqual(irqs.info(IrqIndex.INTX), {
      index: 0,
      count: 1,
      flags: 0b111,
      eventfd: true,
      maskable: true,
      automasked: true,
      resizable: false,
    });
    const msi = irqs.info(IrqIndex.MSI);
    assert.equal(msi.count, 1, 'edu has one MSI vector');
    assert.equal(msi.resizable, false);
    assert.equal(irqs.info(IrqIndex.MSIX).count, 0, 'edu has no MSI-X');
    assert.throws(() => irqs.info(5), RangeError);
    assert.throws(() => irqs.info(1.5), RangeError);
    assert.throws(() => irqs.info('1' as unknown as number), TypeError);
    assert.throws(() => irqs.enableMsi(2), { name: 'RangeError', message: /1\.\.1, not 2/ });
    assert.throws(() => irqs.enableMsi(0), RangeError);
    assert.throws(() => irqs.enableMsi('1' as unknown as number), TypeError);
    assert.throws(() => irqs.enableMsix(1), { name: 'RangeError', message: /has no MSI-X/ });
    assert.throws(() => irqs.setVector(0), { name: 'VfioStateError', code: 'ERR_VFIO_IRQ_MODE' });
    assert.throws(() => irqs.trigger(0), { name: 'VfioStateError', code: 'ERR_VFIO_IRQ_MODE' });
    assert.equal(irqs.mode, 'none');
    assert.equal(procInterrupts(eduMsi), undefined, 'no vector was set up');
    const [v] = irqs.enableMsi();
    assert.throws(() => irqs.enableIntx(), { name: 'VfioStateError', code: 'ERR_VFIO_IRQ_BUSY' });
    assert.throws(() => irqs.setVector(1), { name: 'RangeError', message: /cannot grow/ });
    assert.throws(() => v.unmask(), { name: 'VfioStateError', code: 'ERR_VFIO_IRQ_MODE' });
    assert.equal(procInterrupts(eduMsi), 0, 'MSI vector 0 has a handler');
  });

  it('delivers factorial-done over MSI: one event per completion, the status says which, acknowledging lowers it', async () => {
    const [v] = irqs.enableMsi(1);
    const seen = record(v);
    const before = procInterrupts(eduMsi)!;
    for (const n of [5, 10, 12]) {
      edu.startFactorial(n, true);
      assert.equal(await v.wait({ timeoutMs: 5000 }), 1);
      assert.equal(edu.interruptStatus, EDU_IRQ_FACTORIAL);
      assert.equal(edu.factorialResult, factorial(n));
      edu.acknowledgeInterrupt(EDU_IRQ_FACTORIAL);
      assert.equal(edu.interruptStatus, 0, 'acknowledged');
    }
    assert.equal(await edu.factorial(13, { irq: v }), factorial(13), 'the interrupt-driven helper');
    await sleep(QUIET_MS);
    assert.deepEqual(seen, [1, 1, 1, 1]);
    assert.equal(v.count, 4);
    assert.equal(procInterrupts(eduMsi)! - before, 4, 'the kernel saw exactly as many');
  });

  it('delivers DMA-done over MSI, once per transfer, with the bytes moved', async () => {
    const [v] = irqs.enableMsi();
    const seen = record(v);
    using buf = DmaBuffer.allocate(8192);
    const m = space.map(buf, { limit: EDU_DMA_LIMIT });
    const data = pattern(1500, 3);
    buf.bytes.set(data);
    edu.startDma(true, m.iova, 0, data.length, true);
    assert.equal(await v.wait({ timeoutMs: 5000 }), 1);
    assert.equal(edu.interruptStatus, EDU_IRQ_DMA);
    assert.equal(edu.dmaBusy, false);
    edu.acknowledgeInterrupt(EDU_IRQ_DMA);
    assert.equal(edu.interruptStatus, 0);
    await edu.dmaFromDevice(0, m.iova + 4096n, data.length, { irq: v });
    assert.deepEqual(buf.bytes.subarray(4096, 4096 + data.length), data);
    await sleep(QUIET_MS);
    assert.deepEqual(seen, [1, 1]);
  });

  it('delivers factorial-done and DMA-done over INTx, automasked: exactly one event each, unmasked after acknowledging', async () => {
    const v = irqs.enableIntx();
    assert.equal(v.automasked, true);
    const seen = record(v);
    const before = procInterrupts(eduIntx)!;
    edu.startFactorial(7, true);
    assert.equal(await v.wait({ timeoutMs: 5000 }), 1);
    assert.equal(edu.interruptStatus, EDU_IRQ_FACTORIAL);
    assert.equal(edu.factorialResult, factorial(7));
    edu.acknowledgeInterrupt(EDU_IRQ_FACTORIAL);
    v.unmask();
    assert.equal(await edu.factorial(11, { irq: v }), factorial(11));
    using buf = DmaBuffer.allocate(4096);
    const m = space.map(buf, { limit: EDU_DMA_LIMIT });
    await edu.dmaToDevice(m.iova, 0, 64, { irq: v });
    await edu.dmaFromDevice(0, m.iova + 64n, 64, { irq: v });
    await sleep(QUIET_MS);
    assert.deepEqual(seen, [1, 1, 1, 1], 'one event per completion, none repeated after the unmask');
    assert.equal(edu.interruptStatus, 0);
    assert.equal(procInterrupts(eduIntx)! - before, 4);
  });

  it('holds INTx masked until unmask(): a second raise waits for it', async () => {
    const v = irqs.enableIntx();
    const seen = record(v);
    edu.raiseInterrupt(0x1000);
    await v.wait({ timeoutMs: 5000 });
    edu.acknowledgeInterrupt(0x1000);
    edu.raiseInterrupt(0x2000); // the line rises again while the kernel holds it masked
    await sleep(QUIET_MS);
    assert.deepEqual(seen, [1], 'masked: nothing until unmask()');
    assert.equal(edu.interruptStatus, 0x2000);
    v.unmask(); // still pending: the kernel signals at once and stays masked
    assert.equal(await v.wait({ timeoutMs: 5000 }), 1);
    assert.equal(edu.acknowledgePending(v), 0x2000);
    await sleep(QUIET_MS);
    assert.deepEqual(seen, [1, 1]);
  });

  it('loses no interrupt in a storm of 1000 raises acknowledged as they come: each counted once, as the kernel saw them', async function () {
    this.timeout(120_000);
    const [v] = irqs.enableMsi();
    const seen = record(v);
    const RAISES = 1000;
    const before = procInterrupts(eduMsi)!;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < RAISES; i++) {
      const fired = v.wait({ timeoutMs: 5000 });
      edu.raiseInterrupt(1 << (i % 31));
      await fired;
      assert.equal(edu.acknowledgePending(v), 1 << (i % 31), 'the status names this raise');
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    await sleep(QUIET_MS);
    assert.equal(v.count, RAISES);
    assert.equal(seen.length, RAISES, 'every event counts one interrupt');
    assert.equal(procInterrupts(eduMsi)! - before, RAISES, 'the kernel handled as many');
    console.log(`      storm [${backend}]: ${RAISES} raise/interrupt/acknowledge round trips at ${Math.round(RAISES / seconds)}/s`);
  });

  it('delivers every interrupt the kernel handled in a burst of raises that does not yield to the loop', async function () {
    this.timeout(60_000);
    const [v] = irqs.enableMsi();
    const seen = record(v);
    const before = procInterrupts(eduMsi)!;
    for (let i = 0; i < 1000; i++) edu.raiseInterrupt(1);
    let handled = -1;
    while (handled !== procInterrupts(eduMsi)! - before) {
      // until the kernel is quiet
      handled = procInterrupts(eduMsi)! - before;
      await sleep(QUIET_MS);
    }
    edu.acknowledgePending();
    // The local APIC merges an MSI into one already pending, so the kernel may handle fewer than 1000; what it handled all arrives.
    assert.ok(handled >= 1 && handled <= 1000);
    assert.equal(v.count, handled, 'every interrupt the kernel handled was counted');
    assert.equal(
      seen.reduce((a, b) => a + b, 0),
      handled,
    );
    console.log(`      burst [${backend}]: 1000 raises, ${handled} MSIs handled by the kernel, delivered in ${seen.length} events`);
  });

  it('iterates interrupts asynchronously; the iterator stops on abort and ends when the vector is torn down', async () => {
    const [v] = irqs.enableMsi();
    const ac = new AbortController();
    const seen: number[] = [];
    const consumer = (async (): Promise<void> => {
      for await (const n of v.events({ signal: ac.signal })) {
        seen.push(n);
        edu.acknowledgePending(v);
        if (seen.length === 3) ac.abort();
        else edu.raiseInterrupt(0x10);
      }
    })();
    edu.raiseInterrupt(0x10);
    await assert.rejects(consumer, { name: 'AbortError' });
    assert.deepEqual(seen, [1, 1, 1]);
    assert.equal(v.listenerCount('interrupt'), 0, 'the iterator let go of the vector');

    const total = (async (): Promise<number> => {
      let sum = 0;
      for await (const n of v) sum += n;
      return sum;
    })();
    edu.raiseInterrupt(0x20);
    await until(() => v.count === 4, 'one more');
    edu.raiseInterrupt(0x20);
    await until(() => v.count === 5, 'another');
    irqs.disable();
    assert.equal(await total, 2, 'the iterator saw both, then ended');
    assert.equal(v.isClosed, true);
  });

  it('disable() tears the vector down: a raise then delivers nothing, and the kernel has no handler left', async () => {
    const [v] = irqs.enableMsi();
    const seen = record(v);
    let closed = false;
    v.on('close', () => {
      closed = true;
    });
    edu.raiseInterrupt(0x4);
    await v.wait({ timeoutMs: 5000 });
    edu.acknowledgePending(v);
    irqs.disable();
    irqs.disable(); // idempotent
    assert.equal(irqs.mode, 'none');
    assert.equal(procInterrupts(eduMsi), undefined, 'the MSI handler is gone');
    edu.raiseInterrupt(0x8);
    await sleep(QUIET_MS);
    assert.equal(edu.interruptStatus, 0x8, 'the device raised it');
    assert.deepEqual(seen, [1], 'nothing delivered after disable()');
    assert.equal(closed, true);
    await assert.rejects(v.wait(), { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => v.trigger(), { code: 'ERR_VFIO_CLOSED' });
    edu.acknowledgePending();
    const intx = irqs.enableIntx(); // another mode after disable
    edu.raiseInterrupt(0x1);
    assert.equal(await intx.wait({ timeoutMs: 5000 }), 1);
    edu.acknowledgePending(intx);
  });

  it('wait() refuses a signal that is not an AbortSignal before arming anything; no timer outlives its promise', async () => {
    const [v] = irqs.enableMsi();
    await new Promise((resolve) => setImmediate(resolve)); // mocha arms its time-out once the test returned its promise
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const listeners = (): number => v.listenerCount('interrupt') + v.listenerCount('close');
    const before = { timers: timers(), listeners: listeners() };
    for (const signal of [{}, null, 'abort', { aborted: false, addEventListener: () => undefined }]) {
      assert.throws(() => v.wait({ signal: signal as unknown as AbortSignal, timeoutMs: 50 }), {
        name: 'TypeError',
        message: /^signal must be an AbortSignal, not /,
      });
    }
    assert.throws(() => v.events({ signal: {} as AbortSignal }), { name: 'TypeError', message: /^signal must be an AbortSignal/ });
    assert.deepEqual({ timers: timers(), listeners: listeners() }, before, 'no timer armed, no listener left');
    // settled every way: by abort, by time-out, by an interrupt; each takes its timer and listeners along
    const abort = new AbortController();
    const aborted = v.wait({ signal: abort.signal, timeoutMs: 60_000 });
    abort.abort();
    await assert.rejects(aborted, { name: 'AbortError' });
    await assert.rejects(v.wait({ timeoutMs: 1 }), { code: 'ETIMEDOUT' });
    const fired = v.wait({ signal: new AbortController().signal, timeoutMs: 60_000 });
    edu.raiseInterrupt(0x4);
    assert.equal(await fired, 1);
    edu.acknowledgePending(v);
    assert.deepEqual({ timers: timers(), listeners: listeners() }, before, 'every timer and listener gone with its promise');
    await sleep(QUIET_MS); // a timer a refused call armed would throw here, uncaught (mocha reports it)
  });

  it('reports a kernel refusal as VfioError and keeps no half-made vector', () => {
    irqs.enableMsi();
    const rogue = new DeviceInterrupts(edu.device); // a second controller that does not know MSI is on
    const fds = openFdCount();
    assert.throws(() => rogue.enableIntx(), {
      name: 'VfioError',
      code: 'EINVAL',
      errno: -22,
      syscall: 'ioctl(VFIO_DEVICE_SET_IRQS)',
      message: /another interrupt mode/,
    });
    assert.equal(openFdCount(), fds, 'the eventfds of the refused call are closed');
    assert.equal(rogue.mode, 'none');
    rogue.close();
    assert.equal(irqs.mode, 'msi');
  });

  it("enables nvme's MSI-X vectors, storms them through the kernel's loopback, and changes one vector", async function () {
    this.timeout(120_000);
    using nvme = space.openDevice(BDF.nvme);
    const nirqs = nvme.interrupts;
    const info = nirqs.info(IrqIndex.MSIX);
    assert.ok(info.count >= 16, `nvme offers ${info.count} MSI-X vectors`);
    assert.throws(() => nirqs.enableMsix(info.count + 1), RangeError);
    const vectors = nirqs.enableMsix(info.count);
    assert.equal(vectors.length, info.count);
    for (let i = 0; i < info.count; i++) assert.equal(procInterrupts(nvmeMsix(i)), 0, `vector ${i} has a handler`);

    // the storm: random subsets of every vector, fired from the kernel, rounds interleaved with the loop
    const expected = new Array<number>(info.count).fill(0);
    const ROUNDS = 1000;
    const bits = pattern(ROUNDS * info.count, 11);
    const t0 = process.hrtime.bigint();
    for (let round = 0; round < ROUNDS; round++) {
      const fire = vectors.map((v) => v.vector).filter((i) => bits[round * info.count + i] & 1);
      nirqs.trigger(fire);
      for (const i of fire) expected[i]++;
      if (round % 7 === 0) await new Promise((r) => setImmediate(r));
    }
    const sum = (a: number[]): number => a.reduce((x, y) => x + y, 0);
    await until(() => sum(vectors.map((v) => v.count)) === sum(expected), 'the loopback storm');
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    await sleep(QUIET_MS);
    assert.deepEqual(
      vectors.map((v) => v.count),
      expected,
      'every vector counted exactly what it was sent',
    );
    console.log(
      `      MSI-X storm [${backend}]: ${sum(expected)} interrupts over ${info.count} vectors at ${Math.round(sum(expected) / seconds)}/s`,
    );

    // change vector 3: a new eventfd gets its interrupts, the old one none, the others are untouched
    const old3 = vectors[3];
    const new3 = nirqs.setVector(3);
    assert.equal(old3.isClosed, true);
    assert.equal(nirqs.vector(3), new3);
    nirqs.trigger([2, 3, 4]);
    await until(() => new3.count === 1 && vectors[2].count === expected[2] + 1 && vectors[4].count === expected[4] + 1, 'vectors 2..4');
    assert.equal(old3.count, expected[3]);
    // tear vector 3 down alone: its handler goes, the others stay
    nirqs.setVector(3, null);
    assert.equal(new3.isClosed, true);
    assert.equal(procInterrupts(nvmeMsix(3)), undefined);
    assert.notEqual(procInterrupts(nvmeMsix(4)), undefined);
    assert.throws(() => nirqs.trigger(3), { name: 'RangeError', message: /not armed/ });
    const again = nirqs.setVector(3);
    again.trigger();
    assert.equal(await again.wait({ timeoutMs: 5000 }), 1);
    nirqs.disable();
    for (let i = 0; i < info.count; i++) assert.equal(procInterrupts(nvmeMsix(i)), undefined);
  });

  it("triggers each of nvme's MSI-X vectors by the ioctl prepared for it: that vector alone, once; refused once torn down", async () => {
    using nvme = space.openDevice(BDF.nvme);
    const nirqs = nvme.interrupts;
    const vectors = nirqs.enableMsix(nirqs.info(IrqIndex.MSIX).count);
    const seen = vectors.map(record);
    const total = (): number => seen.reduce((sum, s) => sum + s.length, 0);
    for (const v of vectors) {
      v.trigger();
      await until(() => seen[v.vector].length === 1, `vector ${v.vector}`);
      assert.equal(total(), v.vector + 1, `vector ${v.vector}'s trigger signalled another vector`);
    }
    await sleep(QUIET_MS);
    assert.deepEqual(
      seen,
      vectors.map(() => [1]),
    );
    const old = vectors[2];
    const fresh = nirqs.setVector(2);
    assert.throws(() => old.trigger(), { code: 'ERR_VFIO_CLOSED' });
    fresh.trigger();
    assert.equal(await fresh.wait({ timeoutMs: 5000 }), 1);
    assert.equal(old.count, 1, 'the replaced vector got nothing more');
    nvme.close();
    assert.throws(() => fresh.trigger(), { code: 'ERR_VFIO_CLOSED' });
  });

  it('grows MSI-X one vector at a time where the kernel allows it (dynamic MSI-X), else refuses before the ioctl', async () => {
    using nvme = space.openDevice(BDF.nvme);
    const nirqs = nvme.interrupts;
    const info = nirqs.info(IrqIndex.MSIX);
    nirqs.enableMsix(2);
    console.log(`      MSI-X of nvme [${backend}]: ${info.resizable ? 'dynamic (grows while enabled)' : 'VFIO_IRQ_INFO_NORESIZE'}`);
    if (!info.resizable) {
      assert.throws(() => nirqs.setVector(5), { name: 'RangeError', message: /cannot grow/ });
      return;
    }
    const v5 = nirqs.setVector(5);
    assert.equal(procInterrupts(nvmeMsix(5)), 0);
    assert.deepEqual(
      nirqs.vectors.map((v) => v.vector),
      [0, 1, 5],
    );
    v5.trigger();
    assert.equal(await v5.wait({ timeoutMs: 5000 }), 1);
  });

  it('tears everything down when the device closes, leaving no file descriptor', async () => {
    space.close();
    const before = openFdCount();
    for (let i = 0; i < 3; i++) {
      const s = AddressSpace.open({ backend });
      const e = EduDevice.open(s, BDF.edu);
      const nvme = s.openDevice(BDF.nvme);
      const [msi] = e.device.interrupts.enableMsi();
      const msix = nvme.interrupts.enableMsix(16);
      let closes = 0;
      for (const v of [msi, ...msix]) v.on('close', () => closes++);
      msi.on('interrupt', () => {}); // a listener: the vector holds the loop
      e.raiseInterrupt(1);
      await msi.wait({ timeoutMs: 5000 });
      e.acknowledgePending();
      s.close(); // no disable(): closing the devices does it
      assert.ok([msi, ...msix].every((v) => v.isClosed));
      assert.equal(procInterrupts(eduMsi), undefined);
      assert.equal(procInterrupts(nvmeMsix(0)), undefined);
      await new Promise((r) => setImmediate(r));
      assert.equal(closes, 17, "'close' on every vector");
      assert.throws(() => e.device.interrupts, { code: 'ERR_VFIO_CLOSED' });
    }
    assert.equal(openFdCount(), before);
    space = AddressSpace.open({ backend }); // for afterEach
  });

  it("works in a worker thread, and the worker's exit tears its interrupts down", async function () {
    this.timeout(120_000);
    space.close();
    const before = openFdCount();
    const lib = path.resolve(__dirname, '../../lib');
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { AddressSpace, EduDevice } = require(workerData.lib);
      const space = AddressSpace.open({ backend: workerData.backend });
      const edu = EduDevice.open(space, workerData.bdf);
      const [v] = edu.device.interrupts.enableMsi();
      v.on('interrupt', () => {}); // holds the worker's loop: only the exit ends it
      edu.factorial(6, { irq: v }).then((r) => parentPort.postMessage({ r, count: v.count }));
    `;
    const worker = new Worker(code, { eval: true, workerData: { lib, backend, bdf: BDF.edu } });
    const msg = await new Promise<{ r: number; count: number }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    assert.deepEqual(msg, { r: factorial(6), count: 1 });
    await worker.terminate(); // with the vector live and the device open
    assert.equal(procInterrupts(eduMsi), undefined, "the worker's MSI handler is gone");
    assert.equal(openFdCount(), before, 'the worker left no file descriptor');
    space = AddressSpace.open({ backend });
    edu = EduDevice.open(space, BDF.edu); // the device is free again
  });
});
