/**
 * A short walk through the library under the fake kernel, for
 * test/host/fake-kernel.test.ts: run as a child process with
 * LD_PRELOAD=fake-kernel.so, it opens an address space (backend 'auto', then
 * 'type1'), the fake device, maps and unmaps, reads and writes BAR0 and
 * config space, triggers an MSI-X vector and waits for it, and prints what it
 * saw as one JSON line for the test to check.
 *
 *   node dist/bench/host/smoke.js SYSFS_ROOT BDF
 */
import { AddressSpace, DmaBuffer, PAGE_SIZE } from '../../lib';
import { callDelta, readStats } from './kernel-stats';

/** What one backend did: the test compares it with what the fake kernel should have seen. */
export interface SmokeBackend {
  kind: string;
  /** IOVA ranges as the library read them. */
  ranges: string[];
  iova: string;
  /** Mappings the fake kernel held while the buffer was mapped, and after the unmap. */
  liveMapped: number;
  liveUnmapped: number;
  /** Faked ioctls made by map + unmap. */
  mapCalls: Record<string, number>;
  /** The error code of mapping a second buffer at the same IOVA. */
  overlapCode?: string;
  /** The IOVA of a single-page map right after the unmap (the address space recycles single-page IOVAs). */
  recycledIova: string;
  /** An exact map, then an exact reservation, at the IOVA the space held for reuse: the IOVAs they got. */
  exactIova: string;
  reservedIova: string;
  /** Mappings the fake kernel held at the end. */
  liveAtEnd: number;
  bar0Mapped: boolean;
  bar0Ident: number;
  bar0Readback: number;
  configVendor: number;
  configDevice: number;
}

/** Everything smoke.js prints: each backend's walk, and the interrupt. */
export interface SmokeResult {
  backends: SmokeBackend[];
  /** The count an MSI-X vector's wait() resolved with after trigger(). */
  irqCount: number;
  signals: number;
}

function walk(backend: 'auto' | 'type1', sysfs: string, bdf: string): SmokeBackend {
  using space = AddressSpace.open({ backend, sysfs });
  const device = space.openDevice(bdf);
  const buffer = DmaBuffer.allocate(PAGE_SIZE);
  space.map(buffer).unmap(); // the allocator reads the ranges once
  const before = readStats();
  const m = space.map(buffer);
  const liveMapped = readStats().liveAreas;
  let overlapCode: string | undefined;
  try {
    space.backend.map(buffer.native, 0n, PAGE_SIZE, m.iova, { read: true, write: true }, false);
  } catch (err) {
    overlapCode = (err as { code?: string }).code;
  }
  m.unmap();
  const after = readStats();
  const again = space.map(buffer);
  again.unmap();
  const exact = space.map(buffer, { iova: again.iova });
  exact.unmap();
  const window = space.reserve(PAGE_SIZE, { iova: again.iova });
  window.release();
  const bar = device.bar(0);
  bar.write32(0x100, 0xcafef00d);
  const result: SmokeBackend = {
    kind: space.kind,
    ranges: space.iovaRanges().map((r) => `${r.start.toString(16)}-${r.last.toString(16)}`),
    iova: `0x${m.iova.toString(16)}`,
    liveMapped,
    liveUnmapped: after.liveAreas,
    mapCalls: callDelta(before.calls, after.calls),
    overlapCode,
    recycledIova: `0x${again.iova.toString(16)}`,
    exactIova: `0x${exact.iova.toString(16)}`,
    reservedIova: `0x${window.iova.toString(16)}`,
    liveAtEnd: readStats().liveAreas,
    bar0Mapped: bar.mapped,
    bar0Ident: bar.read32(0),
    bar0Readback: bar.read32(0x100),
    configVendor: device.config.read16(0),
    configDevice: device.config.read16(2),
  };
  buffer.close();
  return result;
}

async function main(sysfs: string, bdf: string): Promise<void> {
  readStats(); // fails first when the shim is missing
  const backends = [walk('auto', sysfs, bdf), walk('type1', sysfs, bdf)];
  using space = AddressSpace.open({ backend: 'iommufd', sysfs });
  const device = space.openDevice(bdf);
  const [vector] = device.interrupts.enableMsix(1);
  const signals = readStats().signals;
  const waiting = vector.wait({ timeoutMs: 2000 });
  vector.trigger();
  const irqCount = await waiting;
  const result: SmokeResult = { backends, irqCount, signals: readStats().signals - signals };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main(process.argv[2], process.argv[3]).catch((err: Error) => {
  process.stderr.write(`smoke: ${err.message}\n`);
  process.exitCode = 1;
});
