/**
 * The host benchmark lane itself, on a plan small enough to take seconds: the
 * library's side with the same-process C side loaded, and the C loop, each
 * under the fake kernel, must report every metric (the DMA rows with C
 * samples paired one to one), and pass their own checks of the calls the
 * fake kernel saw; the report pairs samples as documented.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { buildCLoop, buildFakeKernel, buildSameProcessC } from '../../bench/host/build';
import { createFakeSysfs, FAKE_DEVICE, FakeSysfs } from '../../bench/host/fake-sysfs';
import { HOST_METRICS } from '../../bench/host/metrics';
import { planArgs } from '../../bench/host/plan';
import { table, toRow } from '../../bench/host/report';

const LIBRARY_SIDE = path.resolve(__dirname, '../../bench/host/library-side.js');
const DMA_ROWS = ['map4k', 'map4k.live1000', 'link1024'];

interface Line {
  id?: string;
  ns?: number[];
  cNs?: number[];
  done?: boolean;
}

function run(command: string[], shim: string): Line[] {
  const r = spawnSync(command[0], command.slice(1), {
    env: { ...process.env, LD_PRELOAD: shim, FAKE_KERNEL_SYSCALL: '0' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, `${path.basename(command[1] ?? command[0])} failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Line);
}

describe('host lane: a small round of both sides', function () {
  let shim: string;
  let sysfs: FakeSysfs;
  let args: string[];

  before(function () {
    this.timeout(180_000); // first builds compile the shim, the C loop and the addon
    shim = buildFakeKernel();
    sysfs = createFakeSysfs();
    args = planArgs({
      sysfs: sysfs.root,
      bdf: FAKE_DEVICE.bdf,
      samples: 3,
      warmupMs: 1,
      batch: { map: 20, link: 1, mmio: 100, irqEvent: 5, irqTrigger: 5 },
    });
  });

  after(() => sysfs?.remove());

  it("the library's side reports every metric, the DMA rows with as many same-process C samples", function () {
    this.timeout(120_000);
    const addon = buildSameProcessC();
    const lines = run([process.execPath, LIBRARY_SIDE, ...args, `same_process_c=${addon}`], shim);
    assert.ok(lines.at(-1)?.done, 'the side ends with {"done":true}');
    const byId = new Map(lines.filter((l) => l.id).map((l) => [l.id!, l]));
    assert.deepEqual(
      [...byId.keys()],
      HOST_METRICS.map((m) => m.id),
    );
    // Samples are CPU time, counted in steps of microseconds or more: a sample of this small plan
    // (100 register writes take well under one) may read 0, never less.
    for (const [id, l] of byId) {
      assert.equal(l.ns!.length, 3, id);
      assert.ok(
        l.ns!.every((x) => Number.isFinite(x) && x >= 0),
        `${id}: ${l.ns}`,
      );
      if (DMA_ROWS.includes(id)) {
        assert.equal(l.cNs?.length, 3, `${id}: paired C samples`);
        assert.ok(
          l.cNs!.every((x) => Number.isFinite(x) && x >= 0),
          `${id}: ${l.cNs}`,
        );
      } else assert.equal(l.cNs, undefined, id);
    }
  });

  it('the C loop reports every metric', function () {
    this.timeout(120_000);
    const lines = run([buildCLoop(), ...args], shim);
    assert.ok(lines.at(-1)?.done);
    assert.deepEqual(
      lines.filter((l) => l.id).map((l) => l.id),
      HOST_METRICS.map((m) => m.id),
    );
  });

  it('a paired row takes the median of the differences, and keeps the C program beside it', () => {
    const m = HOST_METRICS.find((x) => x.id === 'link1024')!;
    // medians: library 200, paired C 100 (difference of medians 100); differences 10, 200, 50: median 50
    const row = toRow(m, [100, 300, 200], [70, 80, 90], [90, 100, 150]);
    assert.equal(row.libraryNs, 200);
    assert.equal(row.cNs, 100);
    assert.equal(row.overheadNs, 50);
    assert.equal(row.cProgramNs, 80);
    assert.equal(row.pairing, 'same-process');
    assert.equal(row.met, false, 'over the 25 ns target');
    assert.throws(() => toRow(m, [1, 2, 3], [1], [1, 2]), /3 library samples, 2 paired C samples/);
    const unpaired = toRow(m, [100, 300, 200], [70, 80, 90]);
    assert.equal(unpaired.overheadNs, 120);
    assert.equal(unpaired.cProgramNs, undefined);
    const text = table([row, unpaired], HOST_METRICS);
    assert.match(text, /\| link1024 \| .* \| 100 ns ¹ \| 50\.0 ns \|/);
    assert.match(text, /¹ C inside the library's process/);
  });
});
