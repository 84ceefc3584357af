/**
 * A BAR while its device does not decode memory, on the host: a
 * VfioPciDevice over a fake device file (BAR0 a memfd the Region really
 * mmaps, config space 256 bytes in memory) that, like vfio-pci, makes BAR0
 * unreachable when the Command register's memory-enable bit is clear (the
 * fake's mmap is replaced by a guard: any access the Region makes through
 * the mapping or the file then fails the test). Whichever way memory
 * decoding goes off (setMemoryEnabled, a raw write of PCI_COMMAND through
 * config space, a wider write covering it) the BAR's accessors throw
 * ERR_VFIO_MEMORY_DISABLED naming the BAR, and work again once it is on;
 * during resetAsync() they throw ERR_VFIO_RESETTING. The guest test of the
 * same (test/guest/bar.test.ts) shows the SIGBUS the real kernel gives.
 */
import assert from 'node:assert/strict';
import { PCI_COMMAND, PCI_COMMAND_MEMORY, VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_RESET, VfioPciDevice } from '../../lib/device';
import { MemoryKindCode, native, NativeDevice, NativeMemory } from '../../lib/native';
import { PciRegion, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE } from '../../lib/region';

const BAR_SIZE = 4096;
const CONFIG_SIZE = 256;
const regionOffset = (index: number): bigint => BigInt(index) << 40n;
const PCI_STATUS = 0x06;
/** Where the fake's power management capability is, and its control register (PMCSR). */
const PM_CAP = 0x40;
const PMCSR = PM_CAP + 4;

interface FakeDevice {
  device: VfioPciDevice;
  /** BAR0's bytes, as the fake device holds them. */
  bar: Uint8Array;
  config: Uint8Array;
  /** Accesses that reached BAR0 (through the mapping's native calls or the file) while it did not decode memory. */
  faults: string[];
  /** Ends the reset resetAsync() started. */
  finishReset(): void;
}

function fakeDevice(): FakeDevice {
  const memory: NativeMemory = native.NativeMemory.allocate(BigInt(BAR_SIZE), MemoryKindCode.Memfd);
  const bar = new Uint8Array(memory.arrayBuffer());
  const config = new Uint8Array(CONFIG_SIZE);
  config[PCI_COMMAND] = PCI_COMMAND_MEMORY;
  // a power management capability, the only one: status says there is a list, its head at 0x34
  config[PCI_STATUS] = 0x10;
  config[0x34] = PM_CAP;
  config[PM_CAP] = 0x01;
  config[PM_CAP + 1] = 0;
  const faults: string[] = [];
  const decoding = (): boolean => (config[PCI_COMMAND] & PCI_COMMAND_MEMORY) !== 0 && (config[PMCSR] & 3) !== 3;
  let finishReset = (): void => undefined;
  // The Region's slow path calls the mapping's own accessors past its views: they fault like the zapped mmap.
  const guarded = new Proxy(memory, {
    get(target, key) {
      const v = Reflect.get(target, key) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        if (!decoding() && /^(read|write)\d+$/.test(String(key))) faults.push(`${String(key)} through the mapping`);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  const at = (offset: bigint): { index: number; pos: number } => ({ index: Number(offset >> 40n), pos: Number(offset & 0xffffffffffn) });
  const fake = {
    fd: -1,
    info: () => ({ flags: VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET, numRegions: 9, numIrqs: 5 }),
    regionInfo: (index: number) => ({
      index,
      flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | (index === 0 ? VFIO_REGION_INFO_FLAG_MMAP : 0),
      size: BigInt(index === 0 ? BAR_SIZE : index === PciRegion.CONFIG ? CONFIG_SIZE : 0),
      offset: regionOffset(index),
    }),
    mmap: (offset: bigint) => {
      assert.equal(offset, regionOffset(0));
      return guarded;
    },
    pread: (offset: bigint, target: Uint8Array) => {
      const { index, pos } = at(offset);
      if (index === 0) {
        if (!decoding()) faults.push('pread of BAR0');
        target.set(bar.subarray(pos, pos + target.length));
      } else target.set(config.subarray(pos, pos + target.length));
      return target.length;
    },
    pwrite: (offset: bigint, source: Uint8Array) => {
      const { index, pos } = at(offset);
      if (index === 0) {
        if (!decoding()) faults.push('pwrite of BAR0');
        bar.set(source, pos);
      } else config.set(source, pos);
      return source.length;
    },
    reset: () => undefined,
    resetAsync: () => new Promise<void>((resolve) => (finishReset = resolve)),
    close: () => memory.close(),
  } as unknown as NativeDevice;
  const info = { bdf: '0000:00:03.0', vendor: 0x1234, device: 0x11e8, classCode: 0xff0000, resources: [] };
  const device = new VfioPciDevice(fake, info, { deviceClosed: () => undefined });
  return { device, bar, config, faults, finishReset: () => finishReset() };
}

/** Every accessor of `device`'s BAR0 throws `code`, naming the BAR and the device. */
function assertUnreachable(f: FakeDevice, code: string, message: RegExp): void {
  const r = f.device.bar(0);
  const calls: [string, () => unknown][] = [
    ['read8', () => r.read8(0)],
    ['read16', () => r.read16(2)],
    ['read32', () => r.read32(0)],
    ['read64', () => r.read64(8)],
    ['read32 at a bigint offset', () => r.read32(4n)],
    ['write8', () => r.write8(1, 1)],
    ['write16', () => r.write16(2, 1)],
    ['write32', () => r.write32(4, 1)],
    ['write64', () => r.write64(8, 1n)],
    ['readBytes', () => r.readBytes(0, 16)],
    ['writeBytes', () => r.writeBytes(0, new Uint8Array(4))],
    ['buffer', () => r.buffer],
  ];
  for (const [what, call] of calls) assert.throws(call, { name: 'VfioStateError', code, message }, what);
  assert.deepEqual(f.faults, [], 'nothing reached the unmapped BAR');
}

describe('BAR accesses while memory decoding is off (fake device)', () => {
  let f: FakeDevice;
  beforeEach(() => {
    f = fakeDevice();
  });
  afterEach(() => f.device.close());

  it('setMemoryEnabled(false): every accessor throws ERR_VFIO_MEMORY_DISABLED naming the BAR; setMemoryEnabled(true) brings them back', () => {
    const bar = f.device.bar(0);
    bar.write32(0, 0x12345678);
    assert.equal(bar.read32(0), 0x12345678);
    const events: string[] = [];
    f.device.on('memory-disabled', () => {
      // a listener already sees the BAR unreachable
      assert.throws(() => bar.read32(0), { code: 'ERR_VFIO_MEMORY_DISABLED' });
      events.push('memory-disabled');
    });
    f.device.setMemoryEnabled(false);
    assert.deepEqual(events, ['memory-disabled']);
    assertUnreachable(f, 'ERR_VFIO_MEMORY_DISABLED', /^BAR 0 of 0000:00:03\.0 cannot be accessed: its memory decoding is off/);
    f.device.setMemoryEnabled(true);
    assert.equal(bar.read32(0), 0x12345678);
    bar.write16(4, 0xbeef);
    assert.equal(f.bar[4] | (f.bar[5] << 8), 0xbeef, 'through the mapping again');
    assert.equal(bar.buffer.byteLength, BAR_SIZE);
  });

  it('a raw write of PCI_COMMAND through config space counts the same, in any width that covers it', () => {
    const bar = f.device.bar(0);
    const config = f.device.config;
    let disabled = 0;
    f.device.on('memory-disabled', () => disabled++);
    const cmd = config.read16(PCI_COMMAND);
    config.write16(PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY);
    assertUnreachable(f, 'ERR_VFIO_MEMORY_DISABLED', /BAR 0 .*memory decoding is off/);
    config.write8(PCI_COMMAND, cmd & 0xff);
    assert.equal(bar.read32(0), 0);
    config.write32(PCI_COMMAND, (config.read32(PCI_COMMAND) & ~PCI_COMMAND_MEMORY) >>> 0);
    assertUnreachable(f, 'ERR_VFIO_MEMORY_DISABLED', /memory decoding is off/);
    config.writeBytes(0, Uint8Array.from([...f.config.subarray(0, 4), cmd & 0xff, cmd >> 8]));
    assert.equal(bar.read32(0), 0);
    config.writeBytes(2, Uint8Array.from([f.config[2], f.config[3], cmd & ~PCI_COMMAND_MEMORY & 0xff]));
    assertUnreachable(f, 'ERR_VFIO_MEMORY_DISABLED', /memory decoding is off/);
    config.write8(PCI_COMMAND + 1, 0); // the high byte: the memory-enable bit is not in it
    assertUnreachable(f, 'ERR_VFIO_MEMORY_DISABLED', /memory decoding is off/);
    assert.equal(disabled, 3);
    f.device.setMemoryEnabled(true);
    assert.equal(bar.read32(0), 0);
  });

  it('a BAR opened while memory decoding is off is unreachable from the start', () => {
    f.device.setMemoryEnabled(false);
    assertUnreachable(f, 'ERR_VFIO_MEMORY_DISABLED', /memory decoding is off/);
    f.device.setMemoryEnabled(true);
    assert.equal(f.device.bar(0).read32(0), 0);
  });

  it('during resetAsync() the BAR throws ERR_VFIO_RESETTING, and after it decodes as before', async () => {
    const bar = f.device.bar(0);
    bar.write32(0, 7);
    const reset = f.device.resetAsync();
    assertUnreachable(f, 'ERR_VFIO_RESETTING', /^BAR 0 of 0000:00:03\.0 cannot be accessed while the device resets/);
    f.finishReset();
    await reset;
    assert.equal(bar.read32(0), 7);
    // a reset while memory decoding is off leaves it off
    f.device.setMemoryEnabled(false);
    const again = f.device.resetAsync();
    assertUnreachable(f, 'ERR_VFIO_RESETTING', /while the device resets/);
    f.finishReset();
    await again;
    assertUnreachable(f, 'ERR_VFIO_MEMORY_DISABLED', /memory decoding is off/);
  });

  it('a write of D3hot to the power management control register counts as memory disabled, until D0 or a reset', async () => {
    const bar = f.device.bar(0);
    bar.write32(0, 9);
    let disabled = 0;
    f.device.on('memory-disabled', () => disabled++);
    f.device.config.write16(PMCSR, 3); // D3hot
    assertUnreachable(f, 'ERR_VFIO_MEMORY_DISABLED', /^BAR 0 of 0000:00:03\.0 cannot be accessed: the device is in power state D3hot/);
    assert.equal(disabled, 1);
    f.device.config.write8(PMCSR, 0); // D0
    assert.equal(bar.read32(0), 9);
    f.device.config.write32(PM_CAP + 4, 3);
    assertUnreachable(f, 'ERR_VFIO_MEMORY_DISABLED', /power state D3hot/);
    f.config[PMCSR] = 0; // what VFIO_DEVICE_RESET does first
    const reset = f.device.resetAsync();
    f.finishReset();
    await reset;
    assert.equal(bar.read32(0), 9, 'a reset puts the device in D0');
    f.device.config.write8(PMCSR, 1); // D1: still decoding
    assert.equal(bar.read32(0), 9);
  });

  it('closing the device meanwhile: the BAR is closed (ERR_VFIO_CLOSED), whatever state it was in', () => {
    const bar = f.device.bar(0);
    f.device.setMemoryEnabled(false);
    f.device.close();
    assert.throws(() => bar.read32(0), { code: 'ERR_VFIO_CLOSED' });
    f = fakeDevice(); // for afterEach
  });
});
