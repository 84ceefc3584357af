/**
 * The hints VfioError adds to a failed call's message, where they used to
 * mislead: ENOMEM from a map call advised raising RLIMIT_MEMLOCK even to a
 * process with CAP_IPC_LOCK (which lifts it: type1 and iommufd both skip
 * the accounting then); EFAULT got a hint about BAR mmaps whatever was
 * mapped (it is now chosen by what was mapped); ENOSPC from
 * VFIO_IOMMU_MAP_DMA names type1's dma_entry_limit; a device another
 * process holds is said to be in use. The guest test of the same with the
 * real kernel's answers is test/guest/error-hints.test.ts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { CAP_IPC_LOCK, explainMapError, hasCapability, hintFor, pinRefusedHint, VfioError } from '../../lib/errors';

/** A /proc/self/status with CapEff `capEff` (hex) and `vmPin` kB pinned. */
const status = (capEff: string, vmPin = 0): string =>
  `Name:\tnode\nVmLck:\t       0 kB\nVmPin:\t    ${vmPin} kB\nCapInh:\t0000000000000000\nCapEff:\t${capEff}\nCapBnd:\t000001ffffffffff\n`;

const ROOT_CAPS = '000001ffffffffff';
const NO_IPC_LOCK = (BigInt(`0x${ROOT_CAPS}`) & ~(1n << 14n)).toString(16).padStart(16, '0');

describe('error hints', () => {
  it('reads CAP_IPC_LOCK (bit 14) from CapEff', () => {
    assert.equal(CAP_IPC_LOCK, 14);
    assert.equal(hasCapability(status(ROOT_CAPS), CAP_IPC_LOCK), true);
    assert.equal(hasCapability(status(NO_IPC_LOCK), CAP_IPC_LOCK), false);
    assert.equal(hasCapability(status('0000000000004000'), CAP_IPC_LOCK), true);
    assert.equal(hasCapability('', CAP_IPC_LOCK), false, 'no procfs: as if without it');
  });

  it('ENOMEM from a map call: with CAP_IPC_LOCK, no word of raising RLIMIT_MEMLOCK, but what else to check', () => {
    const hint = pinRefusedHint(status(ROOT_CAPS, 2048));
    assert.doesNotMatch(hint, /raise RLIMIT_MEMLOCK|ulimit/);
    assert.match(hint, /has CAP_IPC_LOCK/);
    assert.match(hint, /MemAvailable in \/proc\/meminfo/);
    assert.match(hint, /memory\.max/);
    assert.match(hint, /VmPin in \/proc\/self\/status: 2048 kB pinned now/);
  });

  it('ENOMEM from a map call: without CAP_IPC_LOCK, raise RLIMIT_MEMLOCK (its value now) or get the capability', () => {
    const hint = pinRefusedHint(status(NO_IPC_LOCK, 64));
    assert.match(hint, /^pinning was refused: raise RLIMIT_MEMLOCK \(ulimit -l, now (unlimited|\d+ KiB); it counts every pinned page/);
    assert.match(hint, /or run with CAP_IPC_LOCK$/);
  });

  it("this process's ENOMEM hint follows its own capabilities", () => {
    const own = hasCapability(fs.readFileSync('/proc/self/status', 'utf8'), CAP_IPC_LOCK);
    for (const syscall of ['ioctl(IOMMU_IOAS_MAP)', 'ioctl(VFIO_IOMMU_MAP_DMA)', 'ioctl(IOMMU_IOAS_COPY)']) {
      const hint = hintFor(syscall, 'ENOMEM') ?? '';
      if (own) assert.doesNotMatch(hint, /raise RLIMIT_MEMLOCK/, syscall);
      else assert.match(hint, /raise RLIMIT_MEMLOCK/, syscall);
    }
  });

  it('EFAULT: the hint about BAR mmaps only when a BAR was mapped; process memory gets its own', () => {
    for (const syscall of ['ioctl(IOMMU_IOAS_MAP)', 'ioctl(VFIO_IOMMU_MAP_DMA)']) {
      for (const memory of [undefined, 'cpu'] as const) {
        const hint = hintFor(syscall, 'EFAULT', '', memory) ?? '';
        assert.doesNotMatch(hint, /BAR/, `${syscall}, ${memory ?? 'unknown memory'}`);
        assert.match(hint, /could not be pinned for the access asked/);
      }
    }
    assert.match(
      hintFor('ioctl(IOMMU_IOAS_MAP)', 'EFAULT', '', 'bar') ?? '',
      /a BAR's mmap cannot be pinned, map peer memory through a P2PProvider/,
    );
    assert.match(
      hintFor('ioctl(VFIO_IOMMU_MAP_DMA)', 'EFAULT', '', 'bar') ?? '',
      /only while the BAR decodes memory.*compatibility container/,
    );
  });

  it('a map error rebuilt for what was mapped and where: one hint, the facts kept', () => {
    const native = new VfioError('EFAULT: Bad address, ioctl(IOMMU_IOAS_MAP)', {
      code: 'EFAULT',
      errno: -14,
      syscall: 'ioctl(IOMMU_IOAS_MAP)',
      detail: '(fragment 2 of 4; the fragments before it were unmapped again)',
    });
    const bar = explainMapError(native, 'bar', 'linking fragment 2 failed') as VfioError;
    assert.ok(bar instanceof VfioError);
    assert.equal(
      bar.message,
      "EFAULT: Bad address, ioctl(IOMMU_IOAS_MAP): linking fragment 2 failed (iommufd pins process memory only: a BAR's mmap cannot be pinned, map peer memory through a P2PProvider (dma-buf))",
    );
    assert.deepEqual([bar.code, bar.errno, bar.syscall, bar.detail], [native.code, native.errno, native.syscall, native.detail]);
    const cpu = explainMapError(bar, 'cpu') as VfioError;
    assert.equal(
      cpu.message,
      `EFAULT: Bad address, ioctl(IOMMU_IOAS_MAP): linking fragment 2 failed (${hintFor('ioctl(IOMMU_IOAS_MAP)', 'EFAULT', '', 'cpu')})`,
      'one hint, the one for process memory',
    );
    const other = new RangeError('not a VfioError');
    assert.equal(explainMapError(other, 'cpu'), other);
  });

  it("ENOSPC from VFIO_IOMMU_MAP_DMA names type1's dma_entry_limit and its module parameter", () => {
    const hint = hintFor('ioctl(VFIO_IOMMU_MAP_DMA)', 'ENOSPC') ?? '';
    assert.match(hint, /dma_entry_limit/);
    assert.match(hint, /vfio_iommu_type1\.dma_entry_limit/);
  });

  it('a device another process holds: the hint says it is in use', () => {
    assert.match(hintFor('ioctl(VFIO_DEVICE_BIND_IOMMUFD)', 'EBUSY') ?? '', /^the device is in use: another process/);
  });
});
