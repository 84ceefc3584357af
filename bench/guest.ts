/**
 * The measurements, in the guest: per backend, rounds of an addon block
 * (one address space, the devices attached, every metric of that backend)
 * and a C block (native-bench with the same devices and specs; then the
 * metrics whose C side uses a kernel driver, with the device bound to it),
 * in alternating order so slow drift of the machine hits both sides alike.
 */
import * as fs from 'node:fs';
import { AddressSpace, BackendKind, VfioPciDevice } from '../lib';
import { bindDriver } from './driver-binding';
import { dmaMetrics } from './metrics/dma';
import { irqMetrics } from './metrics/irq';
import { mmioMetrics, mmioSink } from './metrics/mmio';
import { nvmeMetrics } from './metrics/nvme';
import { p2pStorageMetrics } from './metrics/p2p-storage';
import { BenchContext, Metric, Prepared } from './metrics/types';
import { runNativeBench, Spec } from './native-side';

export type Side = 'addon' | 'c' | 'jsLoop' | 'versus';

export interface RawResult {
  metric: Metric;
  samples: Record<Side, number[]>;
  /** Why the metric could not run, when it could not. */
  error?: string;
}

export interface GuestOptions {
  rounds: number;
  /** Multiplies every metric's sample count (a quick run: below 1). */
  scale: number;
  /** Least warm-up time of each addon measurement in the first round, and in later rounds. */
  warmupMs: { first: number; later: number };
  log: (line: string) => void;
  /** Only the metrics whose id matches (all when undefined). */
  only?: RegExp;
}

/** The backends this kernel offers: iommufd needs /dev/iommu. */
export function availableBackends(): BackendKind[] {
  return fs.existsSync('/dev/iommu') ? ['iommufd', 'type1'] : ['type1'];
}

function metricsFor(backend: BackendKind, first: boolean, only: RegExp | undefined): Metric[] {
  // What does not depend on the backend is measured once, with the first one;
  // the NVMe driver last, as it takes the device over.
  const all = [
    ...dmaMetrics(backend),
    ...(first ? [...mmioMetrics(backend), ...irqMetrics(backend), ...nvmeMetrics(backend)] : []),
    ...p2pStorageMetrics(backend),
  ];
  return only ? all.filter((m) => only.test(m.id)) : all;
}

/**
 * Warms up for `m.warmup` runs and at least `warmupMs` (under TCG, V8 takes
 * seconds to tier hot code up; the steady state is what is compared), then
 * takes the samples: ns per operation.
 */
async function timeSamples(m: Metric, samples: number, p: Prepared, warmupMs: number): Promise<number[]> {
  const sample = async (): Promise<number> => {
    const t0 = process.hrtime.bigint();
    const self = p.run();
    return self === undefined ? Number(process.hrtime.bigint() - t0) : await self;
  };
  const until = Date.now() + warmupMs;
  for (let i = 0; i < m.warmup || Date.now() < until; i++) await sample();
  const ns: number[] = [];
  for (let i = 0; i < samples; i++) ns.push((await sample()) / m.per);
  return ns;
}

async function withSpace<T>(backend: BackendKind, bdfs: readonly string[], body: (ctx: BenchContext) => Promise<T>): Promise<T> {
  using space = AddressSpace.open({ backend });
  const devices = new Map<string, VfioPciDevice>(bdfs.map((b) => [b, space.openDevice(b)]));
  return await body({
    // awaited: the address space is disposed when the body is done
    space,
    device: (bdf) => {
      const d = devices.get(bdf);
      if (!d) throw new Error(`${bdf} is not open`);
      return d;
    },
    closeDevice: (bdf) => {
      devices.get(bdf)?.close();
      devices.delete(bdf);
    },
  });
}

class Runner {
  readonly results = new Map<string, RawResult>();
  /** Addon blocks so far: a metric with a `versus` side runs that side first in every other block. */
  private blocks = 0;
  /** The C specs, completed by the addon's first run (the IOVAs its allocator picked). */
  private readonly specs = new Map<string, Spec>();

  constructor(private readonly o: GuestOptions) {}

  private result(m: Metric): RawResult {
    let r = this.results.get(m.id);
    if (!r) this.results.set(m.id, (r = { metric: m, samples: { addon: [], c: [], jsLoop: [], versus: [] } }));
    return r;
  }

  private fail(r: RawResult, err: unknown): void {
    r.error = err instanceof Error ? err.message : String(err);
    this.o.log(`bench: ${r.metric.id}: ${r.error}`);
  }

  private samples(m: Metric): number {
    return Math.max(1, Math.round(m.samples * this.o.scale));
  }

  private async side(r: RawResult, side: 'addon' | 'jsLoop' | 'versus', p: Prepared, warmupMs: number): Promise<void> {
    try {
      r.samples[side].push(...(await timeSamples(r.metric, this.samples(r.metric), p, warmupMs)));
    } finally {
      await p.close();
    }
  }

  async addonBlock(backend: BackendKind, metrics: Metric[], bdfs: string[], warmupMs: number): Promise<void> {
    const versusFirst = this.blocks++ % 2 === 1;
    await withSpace(backend, bdfs, async (ctx) => {
      for (const m of metrics) {
        const r = this.result(m);
        if (r.error) continue;
        try {
          if (m.versus && versusFirst) await this.side(r, 'versus', await m.versus.prepare(ctx), warmupMs);
          const p = await m.addon(ctx);
          await this.side(r, 'addon', p, warmupMs);
          if (!this.specs.has(m.id)) this.specs.set(m.id, { ...m.cSpec, ...p.cSpec, id: m.id, samples: this.samples(m), warmup: m.warmup });
          if (m.jsLoop) await this.side(r, 'jsLoop', m.jsLoop(ctx), warmupMs);
          if (m.versus && !versusFirst) await this.side(r, 'versus', await m.versus.prepare(ctx), warmupMs);
        } catch (err) {
          this.fail(r, err);
        }
      }
    });
  }

  private native(backend: string, bdfs: string[], metrics: Metric[], extra: (m: Metric) => Spec = () => ({})): void {
    const specs = metrics.map((m) => ({ ...this.specs.get(m.id)!, ...extra(m) }));
    const run = runNativeBench(backend, bdfs, specs);
    for (const m of metrics) {
      const ns = run.samples.get(m.id);
      if (ns) this.result(m).samples.c.push(...ns);
      else this.fail(this.result(m), `native-bench: ${run.error ?? 'no result'}`);
    }
  }

  async cBlock(backend: BackendKind, metrics: Metric[], bdfs: string[]): Promise<void> {
    // a metric measured against another path of the library has no C side
    const ready = metrics.filter((m) => !m.versus && !this.result(m).error && this.specs.has(m.id));
    const viaVfio = ready.filter((m) => !m.kernelDriver);
    if (viaVfio.length > 0) this.native(backend, bdfs, viaVfio);
    for (const m of ready.filter((x) => x.kernelDriver)) {
      const k = m.kernelDriver!;
      try {
        await bindDriver(k.bdf, k.driver);
        this.native('none', [], [m], () => k.spec());
      } catch (err) {
        this.fail(this.result(m), err);
      } finally {
        await bindDriver(k.bdf, 'vfio-pci');
      }
    }
  }
}

export async function runGuestBench(o: GuestOptions): Promise<RawResult[]> {
  const runner = new Runner(o);
  for (const [i, backend] of availableBackends().entries()) {
    const metrics = metricsFor(backend, i === 0, o.only);
    if (metrics.length === 0) continue;
    const bdfs = [...new Set(metrics.flatMap((m) => m.devices))];
    for (let round = 0; round < o.rounds; round++) {
      o.log(`bench: ${backend}, round ${round + 1} of ${o.rounds}`);
      // The first round runs the addon first: it settles the C specs' IOVAs.
      const addonFirst = round % 2 === 0;
      const warmupMs = round === 0 ? o.warmupMs.first : o.warmupMs.later;
      if (addonFirst) await runner.addonBlock(backend, metrics, bdfs, warmupMs);
      await runner.cBlock(backend, metrics, bdfs);
      if (!addonFirst) await runner.addonBlock(backend, metrics, bdfs, warmupMs);
    }
  }
  if (mmioSink() === 0.5) o.log(''); // keeps the MMIO loads observable
  return [...runner.results.values()];
}
