/**
 * Region's register accesses, proven exact by QEMU itself: a guest runs
 * test/fixtures/mmio-pattern.ts against edu's BAR0, whose every access traps
 * to QEMU, with QEMU tracing each one it dispatches to edu
 * (memory_region_ops_read/write: address, value, size) and logging each one
 * it refuses (invalid_mem: edu takes 4- and 8-byte accesses only). The
 * trace, cut into the script's phases at its marker writes, must hold
 * exactly the accesses the script made, in order, of their width and value:
 * none merged, split, dropped or hoisted, also in code V8 has optimized.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runInGuest } from '../../vm/guest';
import { prepareGuest } from '../../vm/prepare';
import {
  Access,
  factorial32,
  FIXED,
  HOT_BASE,
  HOT_ITERATIONS,
  hotIteration,
  marker,
  MmioPatternReport,
  Phase,
  PHASES,
  POLL_INPUTS,
  REG,
  TURBOFANNED,
} from '../fixtures/mmio-pattern';

const quiet = (): void => {};

/** One access to edu's BAR0 as QEMU saw it. */
interface TraceEvent {
  op: 'read' | 'write';
  width: number;
  /** Bytes from BAR0's start. */
  offset: number;
  /** What was read or written (as QEMU traces it: a read's value before it is cut to the access's width). */
  value?: bigint;
  /** QEMU refused the access (its invalid_mem log): edu never saw it. */
  refused: boolean;
}

const TRACED =
  /^memory_region_ops_(read|write) cpu -?\d+ mr 0x[0-9a-f]+ addr 0x([0-9a-f]+) value 0x([0-9a-f]+) size (\d+) name 'edu-mmio'$/;
const REFUSED = /^Invalid (read|write) at addr 0x([0-9A-F]+), size (\d+), region 'edu-mmio', reason: (.*)$/;

/** The accesses to edu in QEMU's log, in order; `barBase` turns traced (absolute) addresses into offsets. */
function parseLog(text: string, barBase: bigint): TraceEvent[] {
  const events: TraceEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes("'edu-mmio'")) continue;
    let m = TRACED.exec(line);
    if (m) {
      events.push({
        op: m[1] as 'read' | 'write',
        offset: Number(BigInt(`0x${m[2]}`) - barBase),
        value: BigInt(`0x${m[3]}`),
        width: 8 * Number(m[4]),
        refused: false,
      });
      continue;
    }
    m = REFUSED.exec(line);
    if (!m) throw new Error(`an edu line of QEMU's log that is neither a trace nor a refusal: ${line}`);
    assert.match(m[4], /^invalid size \(min:4 max:8\)$/, 'QEMU refuses edu accesses for their size only');
    events.push({ op: m[1] as 'read' | 'write', offset: Number.parseInt(m[2], 16), width: 8 * Number(m[3]), refused: true });
  }
  return events;
}

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

/** An access as a line to compare: reads with the value cut to their width, or with `readAs` for registers whose value varies. */
function describeEvent(e: TraceEvent | (Access & { refused: boolean }), readAs?: (value: bigint) => string): string {
  const what = `${e.op}${e.width} ${hex(e.offset)}`;
  if (e.refused) return `${what} refused`;
  const value = (e.value ?? 0n) & ((1n << BigInt(e.width)) - 1n);
  if (e.op === 'write') return `${what} = ${hex(value)}`;
  return `${what} -> ${readAs ? readAs(value) : hex(value)}`;
}

/** What QEMU must show for an access of the script's: edu refuses 8- and 16-bit ones. */
const expectAccess = (a: Access): string => describeEvent({ ...a, refused: a.width < 32 });

describe('Region MMIO as QEMU traces it (edu BAR0, TCG)', function () {
  this.timeout(300_000);
  let report: MmioPatternReport;
  let events: TraceEvent[];
  const phase = {} as Record<Phase, TraceEvent[]>;
  /** Where each marker write is in `events`: [start, end] per phase. */
  const markers = {} as Record<Phase, number[][]>;

  before(async function () {
    const { qemu } = await prepareGuest({ log: quiet });
    // QEMU 10 logs refused accesses under invalid_mem; older ones under guest_errors. (`-d help` exits 1.)
    const items = spawnSync(qemu.binary, ['-d', 'help'], { encoding: 'utf8' }).stdout;
    const refusals = /^invalid_mem\b/m.test(items) ? 'invalid_mem' : 'guest_errors';
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-vfio-mmio-trace-'));
    const logFile = path.join(dir, 'qemu.log');
    try {
      const r = await runInGuest({
        devices: ['edu'],
        log: quiet,
        timeoutMs: 240_000,
        command: ['node', '--allow-natives-syntax', 'dist/test/fixtures/mmio-pattern.js'],
        extraQemuArgs: ['-D', logFile, '-d', `${refusals},trace:memory_region_ops_read,trace:memory_region_ops_write`],
      });
      assert.equal(r.failure, undefined, r.failure);
      assert.equal(r.status, 0, r.output);
      report = JSON.parse(r.output.trim().split('\n').pop() ?? '') as MmioPatternReport;
      events = parseLog(fs.readFileSync(logFile, 'utf8'), BigInt(report.barBase));
      for (const p of PHASES) {
        const at = (end: boolean): number[] => {
          const value = BigInt(marker(p, end));
          return events.flatMap((e, i) => (e.op === 'write' && e.offset === REG.LIVENESS && e.value === value ? [i] : []));
        };
        markers[p] = [at(false), at(true)];
        phase[p] = events.slice(markers[p][0][0] + 1, markers[p][1][0]);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("holds each phase's start and end marker once, in order", () => {
    const order = PHASES.flatMap((p) => markers[p]);
    assert.deepEqual(
      order.map((found) => found.length),
      [1, 1, 1, 1, 1, 1],
    );
    const at = order.map((found) => found[0]);
    assert.deepEqual(
      at,
      [...at].sort((a, b) => a - b),
    );
  });

  it('fixed sequence: each access once, in order, of its width and value; edu takes 4- and 8-byte accesses, QEMU refuses 8- and 16-bit ones', () => {
    assert.deepEqual(
      phase.fixed.map((e) => describeEvent(e)),
      FIXED.map(expectAccess),
    );
    const reads = FIXED.filter((a) => a.op === 'read');
    assert.deepEqual(
      report.fixedReads,
      reads.map((a) => hex(a.value)),
      'the script read what the device answered',
    );
  });

  it('hot loop, run optimized by TurboFan: 1,000 iterations access for access, reads whose values go unused included', () => {
    assert.ok(
      (report.hot.statusBefore & TURBOFANNED) !== 0,
      `hot() was optimized before the traced call (status ${report.hot.statusBefore})`,
    );
    assert.ok((report.hot.statusAfter & TURBOFANNED) !== 0, `hot() was still optimized after it (status ${report.hot.statusAfter})`);
    assert.ok(report.hot.warmupCalls >= 100, 'at least 100,000 iterations of warm-up');
    assert.equal(report.hot.wrong, 0, 'every liveness read gave the complement of the write before it');
    const want: string[] = [];
    for (let i = 0; i < HOT_ITERATIONS; i++) want.push(...hotIteration(HOT_BASE + i).map(expectAccess));
    assert.equal(phase.hot.length, hotIteration(0).length * HOT_ITERATIONS);
    assert.deepEqual(
      phase.hot.map((e) => describeEvent(e)),
      want,
    );
  });

  it('polling: one status read per poll the script counted, until the device cleared "computing"; nothing hoisted', () => {
    assert.ok(
      (report.poll.statusBefore & TURBOFANNED) !== 0,
      `the poll loop was optimized before the traced rounds (status ${report.poll.statusBefore})`,
    );
    assert.deepEqual(
      report.poll.rounds.map((r) => r.n),
      POLL_INPUTS,
    );
    const busy = (v: bigint): string => ((v & 1n) !== 0n ? 'computing' : 'done');
    const want: string[] = [];
    for (const round of report.poll.rounds) {
      assert.equal(round.result, factorial32(round.n), `the factorial of ${round.n}`);
      want.push(`write32 ${hex(REG.FACTORIAL)} = ${hex(round.n)}`);
      for (let k = 1; k < round.polls; k++) want.push(`read32 ${hex(REG.STATUS)} -> computing`);
      want.push(`read32 ${hex(REG.STATUS)} -> done`, `read32 ${hex(REG.FACTORIAL)} -> ${hex(round.result)}`);
    }
    const seen = phase.poll.map((e) => describeEvent(e, e.offset === REG.STATUS ? busy : undefined));
    assert.deepEqual(seen, want);
    assert.ok(
      Math.max(...report.poll.rounds.map((r) => r.polls)) >= 100,
      'a round polled long enough to show each poll re-reads the register',
    );
  });
});
