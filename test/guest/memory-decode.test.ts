/**
 * A BAR while its device does not decode memory: VFIO zaps the BAR's mmap
 * then (and holds it unmapped during a reset), and a load there is a SIGBUS
 * that kills the process. Through the library's accessors nothing may kill
 * it: whichever way memory decoding goes off (setMemoryEnabled(false), a raw
 * write of PCI_COMMAND through config space) the BAR's accessors throw
 * ERR_VFIO_MEMORY_DISABLED naming the BAR (so do they in power state D3hot,
 * where the device has power management), during resetAsync() they throw
 * ERR_VFIO_RESETTING, and they work again once decoding is back. Each
 * device runs in a child process, so that a SIGBUS is seen as a signal and
 * not as the end of the suite.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { BackendKind } from '../../lib/iommu/backend';
import { BDF, forEachBackend } from '../support/guest';

const LIB = path.resolve(__dirname, '../../lib');

/** What one access did in the child: its value, or its error's name, code and message. */
interface Outcome {
  value?: string;
  name?: string;
  code?: string;
  message?: string;
}

/**
 * In a child process: opens `bdf`, turns its memory decoding off and on
 * both ways, resets it (when it can be), and tries BAR `bar`'s accessors at
 * `offset` at each step; its exit, signal and the outcomes by step.
 */
function probe(
  backend: BackendKind,
  bdf: string,
  bar: number,
  offset: number,
): { status: number | null; signal: string | null; output: string; steps: Record<string, Outcome> } {
  const script = `
    const { AddressSpace, PCI_COMMAND, PCI_COMMAND_MEMORY } = require(${JSON.stringify(LIB)});
    const steps = {};
    const print = () => console.log('STEPS ' + JSON.stringify(steps));
    const attempt = (name, fn) => {
      try {
        steps[name] = { value: String(fn()) };
      } catch (e) {
        steps[name] = { name: e.name, code: e.code, message: e.message };
      }
      print(); // what was reached, should the next step kill the process
    };
    const every = (name, region) => {
      attempt(name + ': read32', () => region.read32(${offset}));
      attempt(name + ': read8 at a bigint offset', () => region.read8(${offset}n));
      attempt(name + ': read64', () => region.read64(${offset}));
      attempt(name + ': write32', () => region.write32(${offset}, 0));
      attempt(name + ': readBytes', () => region.readBytes(${offset}, 8).length);
      attempt(name + ': buffer', () => new Uint32Array(region.buffer)[${offset / 4}]);
    };
    (async () => {
      const space = AddressSpace.open({ backend: ${JSON.stringify(backend)} });
      const device = space.openDevice(${JSON.stringify(bdf)});
      const region = device.bar(${bar});
      attempt('mapped', () => region.mapped);
      attempt('decoding', () => region.read32(${offset}));
      device.setMemoryEnabled(false);
      every('setMemoryEnabled(false)', region);
      device.setMemoryEnabled(true);
      attempt('setMemoryEnabled(true)', () => region.read32(${offset}));
      const cmd = device.config.read16(PCI_COMMAND);
      device.config.write16(PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY);
      every('raw PCI_COMMAND write', region);
      device.config.write16(PCI_COMMAND, cmd);
      attempt('raw PCI_COMMAND write back on', () => region.read32(${offset}));
      // the power management capability, if the device has one: D3hot unmaps the BARs too
      let pm = device.config.read8(0x06) & 0x10 ? device.config.read8(0x34) & ~3 : 0;
      while (pm >= 0x40 && device.config.read8(pm) !== 0x01) pm = device.config.read8(pm + 1) & ~3;
      if (pm >= 0x40) {
        const pmcsr = device.config.read16(pm + 4);
        device.config.write16(pm + 4, (pmcsr & ~3) | 3);
        attempt('D3hot: read32', () => region.read32(${offset}));
        device.config.write16(pm + 4, pmcsr & ~3);
        attempt('D0 again', () => region.read32(${offset}));
      }
      if (device.info().flags & 1) {
        const reset = device.resetAsync();
        attempt('during resetAsync: read32', () => region.read32(${offset}));
        await reset;
        attempt('after resetAsync', () => region.read32(${offset}));
        device.reset();
        attempt('after reset', () => region.read32(${offset}));
      }
      space.close();
    })().catch((e) => {
      console.error(e);
      process.exitCode = 1;
    });
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000 });
  const last = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('STEPS '))
    .pop();
  const steps = last ? (JSON.parse(last.slice(6)) as Record<string, Outcome>) : {};
  return { status: r.status, signal: r.signal, output: r.stdout + r.stderr, steps };
}

const DEVICES = [
  { name: 'edu BAR0 (registers)', bdf: BDF.edu, bar: 0, offset: 0, pm: false },
  { name: 'ivshmem BAR2 (memory)', bdf: BDF.ivshmem, bar: 2, offset: 0x30000, pm: false },
  { name: 'nvme BAR0 (registers, with power management and a function-level reset)', bdf: BDF.nvme, bar: 0, offset: 0x1c, pm: true },
];

forEachBackend('BAR accesses while memory decoding is off', (backend) => {
  for (const d of DEVICES) {
    it(`${d.name}: throws ERR_VFIO_MEMORY_DISABLED (and ERR_VFIO_RESETTING during resetAsync) instead of a SIGBUS`, function () {
      this.timeout(180_000);
      const r = probe(backend, d.bdf, d.bar, d.offset);
      const reached = Object.keys(r.steps).pop();
      assert.equal(r.signal, null, `the child died of ${r.signal} after step '${reached}'`);
      assert.equal(r.status, 0, r.output);
      assert.equal(r.steps.mapped.value, 'true', 'the BAR is mmapped: its accessors are loads and stores');
      assert.equal(r.steps.decoding.name, undefined, r.steps.decoding.message);
      const bar = `BAR ${d.bar} of ${d.bdf}`;
      for (const way of ['setMemoryEnabled(false)', 'raw PCI_COMMAND write']) {
        for (const access of ['read32', 'read8 at a bigint offset', 'read64', 'write32', 'readBytes', 'buffer']) {
          const o = r.steps[`${way}: ${access}`];
          assert.equal(o.code, 'ERR_VFIO_MEMORY_DISABLED', `${way}, ${access}: ${JSON.stringify(o)}`);
          assert.equal(o.name, 'VfioStateError');
          assert.ok(o.message?.startsWith(`${bar} cannot be accessed: its memory decoding is off`), o.message);
        }
      }
      assert.equal(r.steps['setMemoryEnabled(true)'].value, r.steps.decoding.value, 'readable again, the same register');
      assert.equal(r.steps['raw PCI_COMMAND write back on'].value, r.steps.decoding.value);
      assert.equal(Boolean(r.steps['D3hot: read32']), d.pm, d.pm ? 'the D3hot step ran' : 'no power management capability');
      if (r.steps['D3hot: read32']) {
        assert.equal(r.steps['D3hot: read32'].code, 'ERR_VFIO_MEMORY_DISABLED', JSON.stringify(r.steps['D3hot: read32']));
        assert.match(r.steps['D3hot: read32'].message ?? '', /power state D3hot/);
        assert.equal(r.steps['D0 again'].name, undefined, r.steps['D0 again'].message);
      }
      if (r.steps['during resetAsync: read32']) {
        assert.equal(r.steps['during resetAsync: read32'].code, 'ERR_VFIO_RESETTING');
        assert.equal(r.steps['after resetAsync'].name, undefined, r.steps['after resetAsync'].message);
        assert.equal(r.steps['after reset'].name, undefined, r.steps['after reset'].message);
      }
    });
  }
});
