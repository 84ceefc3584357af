/**
 * DMA isolation, on every device with a DMA test driver
 * (test/support/dma-driver.ts: edu and nvme) in every IOMMU mode of the
 * kernel's VFIO selftests: a copy through the device moves the bytes
 * between two mappings; DMA to and from an IOVA that is not mapped (never,
 * or no longer) changes no byte of memory, delivers none, and the IOMMU
 * logs the fault against that device; many such DMAs at scattered IOVAs
 * leave every mapped buffer as it was; and the device's interrupt arrives.
 */
import assert from 'node:assert/strict';
import { DmaBuffer } from '../../lib/memory';
import { DmaTestDriver, forEachDmaDriver } from '../support/dma-driver';
import { forEachIommuMode, kernelLogSince, markKernelLog, pattern, waitFaultLogQuota } from '../support/guest';

/** The copy, and what the device said of it (undefined: done). */
async function copy(driver: DmaTestDriver, src: bigint, dst: bigint, length: number): Promise<Error | undefined> {
  driver.memcpyStart(src, dst, length);
  try {
    await driver.memcpyWait();
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

/** The device's PCI address as the Intel IOMMU's fault log prints it. */
const faultPattern = (driver: DmaTestDriver, access: 'Read' | 'Write'): RegExp =>
  new RegExp(`DMAR: \\[DMA ${access} NO_PASID\\] Request device \\[(0000:)?${driver.bdf.slice(5).replace('.', '\\.')}\\] fault addr`);

forEachIommuMode('DMA isolation', (mode) => {
  forEachDmaDriver(mode.name, mode.options, (fx) => {
    it('copies bytes from one mapping to another through the device, nothing around them touched', async () => {
      const { driver } = fx;
      const bytes = Math.ceil((driver.maxCopy + 8192) / 4096) * 4096;
      using src = DmaBuffer.allocate(bytes);
      using dst = DmaBuffer.allocate(bytes);
      const ms = driver.space.map(src, driver.mapOptions);
      const md = driver.space.map(dst, driver.mapOptions);
      const unit = driver.copyUnit;
      const longest = Math.floor(driver.maxCopy / unit) * unit;
      for (const [length, at] of [
        [unit, 0],
        [8 * unit, 4096 + 64],
        [longest, 100 * 4],
      ]) {
        const data = pattern(length, length + at);
        src.bytes.set(data, at);
        dst.bytes.fill(0x5a);
        assert.equal(await copy(driver, ms.iova + BigInt(at), md.iova + BigInt(at), length), undefined);
        assert.deepEqual(dst.bytes.subarray(at, at + length), data, `${length} bytes at ${at}`);
        assert.equal(dst.bytes[at - 1] ?? 0x5a, 0x5a, 'the byte before was not touched');
        assert.equal(dst.bytes[at + length], 0x5a, 'the byte after was not touched');
      }
      ms.unmap();
      md.unmap();
    });

    it('blocks DMA to and from IOVAs that are not mapped (any more): no memory changes, none is delivered, the IOMMU logs the fault', async function () {
      this.timeout(60_000);
      const { driver } = fx;
      const length = Math.max(256, driver.copyUnit);
      using victim = DmaBuffer.allocate(4096);
      using out = DmaBuffer.allocate(4096);
      using back = DmaBuffer.allocate(4096);
      const mo = driver.space.map(out, driver.mapOptions);
      const mb = driver.space.map(back, driver.mapOptions);
      const mv = driver.space.map(victim, driver.mapOptions);
      const victimIova = mv.iova;
      // it worked while mapped
      out.bytes.set(pattern(length, 1));
      assert.equal(await copy(driver, mo.iova, victimIova, length), undefined);
      assert.deepEqual(victim.bytes.subarray(0, length), pattern(length, 1));
      mv.unmap(); // the IOVA reached `victim`: now nothing is there
      victim.bytes.fill(0x11);
      out.bytes.set(pattern(length, 7));
      await waitFaultLogQuota();
      const mark = markKernelLog(`isolation-${driver.name}`);
      await copy(driver, mo.iova, victimIova, length); // the device writes to an unmapped IOVA
      assert.ok(
        victim.bytes.every((b) => b === 0x11),
        'a blocked DMA write changed memory',
      );
      const secret = pattern(length, 9);
      victim.bytes.set(secret);
      back.bytes.fill(0xee);
      await copy(driver, victimIova, mb.iova, length); // the device reads from an unmapped IOVA
      const got = back.bytes.subarray(0, length);
      assert.ok(
        got.every((b) => b === 0 || b === 0xee),
        'a blocked DMA read delivered memory (the device may move zeros, or fail the copy)',
      );
      const log = kernelLogSince(mark);
      assert.match(log, faultPattern(driver, 'Write'));
      assert.match(log, faultPattern(driver, 'Read'));
      // and the device still works
      out.bytes.set(pattern(length, 3));
      assert.equal(await copy(driver, mo.iova, mb.iova, length), undefined);
      assert.deepEqual(back.bytes.subarray(0, length), pattern(length, 3));
      mo.unmap();
      mb.unmap();
    });

    it('many DMAs to scattered IOVAs that are not mapped leave every mapped buffer as it was', async function () {
      this.timeout(120_000);
      const { driver } = fx;
      const length = Math.min(Math.max(64, driver.copyUnit), 4096);
      // sentinels mapped between holes: their IOVAs and the holes around them
      const sentinels = Array.from({ length: 4 }, () => DmaBuffer.allocate(8192));
      const holes = Array.from({ length: 4 }, () => DmaBuffer.allocate(4096));
      try {
        const mapped = sentinels.map((s, i) => {
          s.bytes.fill(0x30 + i);
          return driver.space.map(s, driver.mapOptions);
        });
        const gone = holes.map((h) => {
          const m = driver.space.map(h, driver.mapOptions);
          const iova = m.iova;
          m.unmap();
          return iova;
        });
        const src = mapped[0];
        let x = 12345;
        let dmas = 0;
        for (let k = 0; k < 16; k++) {
          x = (Math.imul(x, 1103515245) + 12345) >>> 0;
          // inside the hole's page: its neighbours may be mapped
          const at = (x % ((4096 - length) / driver.copyUnit + 1)) * driver.copyUnit;
          await copy(driver, src.iova, gone[k % gone.length] + BigInt(at), length);
          dmas++;
        }
        assert.equal(dmas, 16);
        sentinels.forEach((s, i) =>
          assert.ok(
            s.bytes.every((b) => b === 0x30 + i),
            `sentinel ${i} changed`,
          ),
        );
        holes.forEach((h, i) =>
          assert.ok(
            h.bytes.every((b) => b === 0),
            `the buffer once at hole ${i} changed`,
          ),
        );
        for (const m of mapped) m.unmap();
      } finally {
        for (const b of [...sentinels, ...holes]) b.close();
      }
    });

    it('sends an interrupt that arrives on its vector', async () => {
      assert.ok((await fx.driver.sendInterrupt()) >= 1);
      assert.ok((await fx.driver.sendInterrupt()) >= 1, 'and again');
    });
  });
});
