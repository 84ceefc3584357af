/**
 * The measurements, in the guest: per backend, rounds of an addon block
 * (one address space, the devices attached, every metric of that backend)
 * and a C block (native-bench with the same devices and specs), in
 * alternating order so slow drift of the machine hits both sides alike.
 */
import * as fs from 'node:fs';
import { AddressSpace, BackendKind, VfioPciDevice } from '../lib';
import { dmaMetrics } from './metrics/dma';
import { mmioMetrics, mmioSink } from './metrics/mmio';
import { BenchContext, Metric, Prepared } from './metrics/types';
import { runNativeBench, Spec } from './native-side';

export type Side = 'addon' | 'c' | 'jsLoop';

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
}

/** The backends this kernel offers: iommufd needs /dev/iommu. */
export function availableBackends(): BackendKind[] {
  return fs.existsSync('/dev/iommu') ? ['iommufd', 'type1'] : ['type1'];
}

function metricsFor(backend: BackendKind, first: boolean): Metric[] {
  // MMIO does not depend on the backend: measured once, with the first one.
  return [...dmaMetrics(backend), ...(first ? mmioMetrics(backend) : [])];
}

/**
 * Warms up for `m.warmup` runs and at least `warmupMs`: under TCG, V8 takes
 * seconds to tier hot code up to optimized code, and the steady state is
 * what is compared.
 */
function timeSamples(m: Metric, samples: number, p: Prepared, warmupMs: number): number[] {
  const until = Date.now() + warmupMs;
  for (let i = 0; i < m.warmup || Date.now() < until; i++) p.run();
  const ns: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = process.hrtime.bigint();
    p.run();
    ns.push(Number(process.hrtime.bigint() - t0) / m.per);
  }
  return ns;
}

function withSpace<T>(backend: BackendKind, bdfs: readonly string[], body: (ctx: BenchContext) => T): T {
  using space = AddressSpace.open({ backend });
  const devices = new Map<string, VfioPciDevice>(bdfs.map((b) => [b, space.openDevice(b)]));
  return body({
    space,
    device: (bdf) => {
      const d = devices.get(bdf);
      if (!d) throw new Error(`${bdf} is not open`);
      return d;
    },
  });
}

function sampleCount(m: Metric, scale: number): number {
  return Math.max(1, Math.round(m.samples * scale));
}

class Runner {
  readonly results = new Map<string, RawResult>();
  /** The C specs, completed by the addon's first run (the IOVAs its allocator picked). */
  private readonly specs = new Map<string, Spec>();

  constructor(private readonly o: GuestOptions) {}

  private result(m: Metric): RawResult {
    let r = this.results.get(m.id);
    if (!r) this.results.set(m.id, r = { metric: m, samples: { addon: [], c: [], jsLoop: [] } });
    return r;
  }

  addonBlock(backend: BackendKind, metrics: Metric[], bdfs: string[], warmupMs: number): void {
    withSpace(backend, bdfs, (ctx) => {
      for (const m of metrics) {
        const r = this.result(m);
        if (r.error) continue;
        try {
          const n = sampleCount(m, this.o.scale);
          const p = m.addon(ctx);
          try {
            r.samples.addon.push(...timeSamples(m, n, p, warmupMs));
          } finally {
            p.close();
          }
          if (!this.specs.has(m.id)) this.specs.set(m.id, { ...m.cSpec, ...p.cSpec, id: m.id, samples: n, warmup: m.warmup });
          if (m.jsLoop) {
            const j = m.jsLoop(ctx);
            try {
              r.samples.jsLoop.push(...timeSamples(m, n, j, warmupMs));
            } finally {
              j.close();
            }
          }
        } catch (err) {
          r.error = (err as Error).message;
          this.o.log(`bench: ${m.id}: ${r.error}`);
        }
      }
    });
  }

  cBlock(backend: BackendKind, metrics: Metric[], bdfs: string[]): void {
    const specs = metrics.filter((m) => !this.result(m).error && this.specs.has(m.id)).map((m) => this.specs.get(m.id)!);
    if (specs.length === 0) return;
    const run = runNativeBench(backend, bdfs, specs);
    for (const spec of specs) {
      const r = this.results.get(String(spec.id))!;
      const ns = run.samples.get(r.metric.id);
      if (ns) r.samples.c.push(...ns);
      else r.error = `native-bench: ${run.error ?? 'no result'}`;
    }
    if (run.error) this.o.log(`bench: ${run.error}`);
  }
}

export function runGuestBench(o: GuestOptions): RawResult[] {
  const runner = new Runner(o);
  availableBackends().forEach((backend, i) => {
    const metrics = metricsFor(backend, i === 0);
    const bdfs = [...new Set(metrics.flatMap((m) => m.devices))];
    for (let round = 0; round < o.rounds; round++) {
      o.log(`bench: ${backend}, round ${round + 1} of ${o.rounds}`);
      // The first round runs the addon first: it settles the C specs' IOVAs.
      const blocks = round % 2 === 0 ? ['addon', 'c'] : ['c', 'addon'];
      for (const b of blocks) {
        if (b === 'addon') runner.addonBlock(backend, metrics, bdfs, round === 0 ? o.warmupMs.first : o.warmupMs.later);
        else runner.cBlock(backend, metrics, bdfs);
      }
    }
  });
  if (mmioSink() === 0.5) o.log(''); // keeps the MMIO loads observable
  return [...runner.results.values()];
}
