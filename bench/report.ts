/**
 * The results: per metric the addon's and the C program's median and min
 * (ns per operation), their ratio, the runs, the target and whether it was
 * met, and what the figures stand for when the guest is emulated; a JSON
 * file, a Markdown table (the console's and the README's) and notes under it.
 */
import type { RawResult } from './guest';
import type { Metric, Target } from './metrics/types';
import { formatNs, ratio, summarize, Summary } from './stats';

/**
 * What a row's figures stand for under emulation (see Metric.figure):
 * 'ratio', the addon ÷ C ratio (diagnostic under TCG); 'device', a device
 * path's throughput; 'kernel', system calls saved for the same work.
 */
export type Figure = NonNullable<Metric['figure']>;

export interface MeasuredRow {
  id: string;
  label: string;
  backend: string;
  figure: Figure;
  addon: Summary;
  c: Summary;
  /** addon median / C median. */
  ratio: number;
  /** addon min / C min: the least disturbed runs of each. */
  minRatio: number;
  target?: string;
  /** Both parts of the target met. */
  met?: boolean;
  /** Each part, for a target with a JS loop part: addon ÷ C, and JS loop ÷ addon. */
  metParts?: { ratio: boolean; jsLoop: boolean };
  jsLoop?: Summary;
  /** JavaScript loop median / addon median. */
  jsLoopOverAddon?: number;
  /** Operations per second at the medians, where that is the usual measure (I/O). */
  perSecond?: { addon: number; c: number };
}

export interface FailedRow {
  id: string;
  label: string;
  figure: Figure;
  target?: string;
  /** Why it has no numbers in this run. */
  error: string;
}

/**
 * Two paths of the library for the same work (a metric with `versus`), no C
 * side: e.g. NVMe into a peer BAR directly against through CPU memory.
 */
export interface PairRow {
  id: string;
  label: string;
  backend: string;
  figure: 'pair';
  /** The addon side: the direct path. */
  direct: Summary;
  /** What the other side is. */
  versusLabel: string;
  versus: Summary;
  /** versus median / direct median: how many times longer the other path takes. */
  ratio: number;
  /** The same of the minima. */
  minRatio: number;
  /** Bytes per operation, and MiB/s of each side at the medians. */
  bytesPerOp?: number;
  mibPerSecond?: { direct: number; versus: number };
}

export type Row = MeasuredRow | FailedRow | PairRow;

export interface Report {
  date: string;
  machine: Record<string, string | number>;
  rounds: number;
  unit: 'ns per operation';
  metrics: Row[];
}

function targetText(t: Target): string {
  return `≤ ${t.maxRatio.toFixed(2)}× C${t.minSpeedupOverJsLoop ? `, JS loop ≥ ${t.minSpeedupOverJsLoop}× addon` : ''}`;
}

/** Sets `met` (and `metParts` when the target has a JS loop part: under TCG only that part may count). */
function judge(row: MeasuredRow, t: Target): void {
  const ratioMet = row.ratio <= t.maxRatio;
  if (t.minSpeedupOverJsLoop === undefined) {
    row.met = ratioMet;
    return;
  }
  const jsLoopMet = (row.jsLoopOverAddon ?? 0) >= t.minSpeedupOverJsLoop;
  row.metParts = { ratio: ratioMet, jsLoop: jsLoopMet };
  row.met = ratioMet && jsLoopMet;
}

export function toRows(raw: RawResult[]): Row[] {
  return raw.map(({ metric: m, samples, error }): Row => {
    const target = m.target && targetText(m.target);
    const figure = m.figure ?? (m.perSecond ? 'device' : 'ratio');
    if (m.versus && !error && samples.addon.length > 0 && samples.versus.length > 0) {
      const direct = summarize(samples.addon);
      const versus = summarize(samples.versus);
      const row: PairRow = {
        id: m.id,
        label: m.label,
        backend: m.backend,
        figure: 'pair',
        direct,
        versusLabel: m.versus.label,
        versus,
        ratio: ratio(versus, direct),
        minRatio: ratio(versus, direct, 'min'),
      };
      if (m.bytesPerOp) {
        const mib = (ns: number): number => Math.round((m.bytesPerOp! / (1 << 20) / (ns / 1e9)) * 10) / 10;
        row.bytesPerOp = m.bytesPerOp;
        row.mibPerSecond = { direct: mib(direct.median), versus: mib(versus.median) };
      }
      return row;
    }
    if (error || samples.addon.length === 0 || (samples.c.length === 0 && !m.versus) || (m.versus && samples.versus.length === 0)) {
      return { id: m.id, label: m.label, figure, target, error: error ?? 'no samples' };
    }
    const addon = summarize(samples.addon);
    const c = summarize(samples.c);
    const row: MeasuredRow = {
      id: m.id,
      label: m.label,
      backend: m.backend,
      figure,
      addon,
      c,
      ratio: ratio(addon, c),
      minRatio: ratio(addon, c, 'min'),
      target,
    };
    if (samples.jsLoop.length > 0) {
      row.jsLoop = summarize(samples.jsLoop);
      row.jsLoopOverAddon = ratio(row.jsLoop, addon);
    }
    if (m.perSecond) row.perSecond = { addon: Math.round(1e9 / addon.median), c: Math.round(1e9 / c.median) };
    if (m.target) judge(row, m.target);
    return row;
  });
}

function isMeasured(r: Row): r is MeasuredRow {
  return 'addon' in r;
}

function isPair(r: Row): r is PairRow {
  return 'direct' in r;
}

const HEADER = [
  'metric',
  'backend',
  'addon median',
  'addon min',
  'C median',
  'C min',
  'addon / C',
  'mins: addon / C',
  'runs',
  'JS loop median (÷ addon)',
  'target',
  'met',
  'figure',
];

/** Whether the guest ran under TCG emulation (its report says so in machine.guest). */
function emulated(report: Report): boolean {
  return /\bTCG\b/.test(String(report.machine.guest));
}

/** The last column: which of the row's numbers stand for what, on this machine. */
function figureText(f: Figure, tcg: boolean): string {
  const ratio = tcg ? 'addon ÷ C: diagnostic under TCG' : 'addon ÷ C';
  if (f === 'device') return `ops/s: device throughput; ${ratio}`;
  if (f === 'kernel') return `JS loop ÷ addon: system calls saved; ${ratio}`;
  if (f === 'pair') return 'two paths of the library, no C side (see the table of pairs)';
  return ratio;
}

const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

/** 'yes', 'no', or for a two-part target each part: 'C: no, JS loop: yes'. */
function metText(r: MeasuredRow): string {
  if (r.metParts) return `C: ${yesNo(r.metParts.ratio)}, JS loop: ${yesNo(r.metParts.jsLoop)}`;
  return r.met === undefined ? '—' : yesNo(r.met);
}

function cells(r: MeasuredRow | FailedRow, tcg: boolean): string[] {
  if (!isMeasured(r)) return [r.label, '', '', '', '', '', '', '', '', '', r.target ?? '', `failed: ${r.error}`, figureText(r.figure, tcg)];
  const rate = (ns: number, perSecond?: number): string => `${formatNs(ns)}${perSecond ? ` (${perSecond} /s)` : ''}`;
  const js = r.jsLoop ? `${formatNs(r.jsLoop.median)} (${r.jsLoopOverAddon!.toFixed(1)}×)` : '';
  return [
    r.label,
    r.backend,
    rate(r.addon.median, r.perSecond?.addon),
    formatNs(r.addon.min),
    rate(r.c.median, r.perSecond?.c),
    formatNs(r.c.min),
    `${r.ratio.toFixed(2)}×`,
    `${r.minRatio.toFixed(2)}×`,
    `${r.addon.runs} / ${r.c.runs}`,
    js,
    r.target ?? '—',
    metText(r),
    figureText(r.figure, tcg),
  ];
}

/** The report as JSON, one metric a line: small, and diffs read well. */
export function toJson(report: Report): string {
  const { metrics, ...head } = report;
  const top = JSON.stringify(head);
  return `${top.slice(0, -1)},"metrics":[\n${metrics.map((m) => JSON.stringify(m)).join(',\n')}\n]}\n`;
}

const PAIR_HEADER = [
  'metric',
  'backend',
  'direct median',
  'direct min',
  'other path',
  'other median',
  'other min',
  'other ÷ direct',
  'mins',
  'runs',
];

function pairCells(r: PairRow): string[] {
  const rate = (ns: number, mib?: number): string => `${formatNs(ns)}${mib === undefined ? '' : ` (${mib} MiB/s)`}`;
  return [
    r.label,
    r.backend,
    rate(r.direct.median, r.mibPerSecond?.direct),
    formatNs(r.direct.min),
    r.versusLabel,
    rate(r.versus.median, r.mibPerSecond?.versus),
    formatNs(r.versus.min),
    `${r.ratio.toFixed(2)}×`,
    `${r.minRatio.toFixed(2)}×`,
    `${r.direct.runs} / ${r.versus.runs}`,
  ];
}

const markdown = (lines: string[][]): string => lines.map((l) => `| ${l.join(' | ')} |`).join('\n');

/**
 * Markdown tables of the report: the rows against C (and failed rows), then,
 * when there are any, the pairs of two paths of the library (time per
 * operation with throughput, and how many times longer the other path takes).
 */
export function table(report: Report): string {
  const tcg = emulated(report);
  const main = report.metrics.filter((r): r is MeasuredRow | FailedRow => !isPair(r));
  const pairs = report.metrics.filter(isPair);
  const out: string[] = [];
  if (main.length > 0) out.push(markdown([HEADER, HEADER.map(() => '---'), ...main.map((r) => cells(r, tcg))]));
  if (pairs.length > 0) out.push(markdown([PAIR_HEADER, PAIR_HEADER.map(() => '---'), ...pairs.map(pairCells)]));
  return out.join('\n\n');
}

/**
 * What to read the table with: under TCG, which figures are diagnostic; for
 * each 'kernel' row (a DmaPool list linked as one run, id pool.BACKEND.N),
 * the saving in JavaScript (its JS loop of N single maps ÷ the link) beside
 * the same saving in C (the physlist.BACKEND.N row's C side, N single maps,
 * ÷ its own C side, one map of the run).
 */
export function notes(report: Report): string[] {
  const out: string[] = [];
  if (emulated(report)) {
    out.push(
      'Under TCG, JavaScript runs 90-200× slower than on hardware and kernel code 20-40×: an addon ÷ C ratio marked ' +
        "'diagnostic' overstates what the library adds, and its target is for hardware (npm run bench:host measures " +
        "the library's own cost on the real CPU). Device throughput and system calls saved are figures of the emulated " +
        'kernel and devices, on both sides alike.',
    );
  }
  const measured = report.metrics.filter(isMeasured);
  for (const r of measured.filter((x) => x.figure === 'kernel')) {
    const single = measured.find((x) => x.id === r.id.replace(/^pool\./, 'physlist.'));
    if (!r.jsLoopOverAddon || !single) continue;
    out.push(
      `${r.label}, ${r.backend}: single maps take ${r.jsLoopOverAddon.toFixed(1)}× the link in JavaScript, ` +
        `and in C ${ratio(single.c, r.c).toFixed(1)}× one map of the run (${formatNs(single.c.median)} vs ${formatNs(r.c.median)}).`,
    );
  }
  return out;
}
