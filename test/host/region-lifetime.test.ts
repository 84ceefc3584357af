/**
 * A closed Region: every accessor says so with a VfioStateError, in the
 * interpreter and in optimized code, its views are gone with the mapping,
 * and nothing reaches the unmapped memory.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Region } from '../../lib/region';
import type { RegionOptimizedResult } from '../fixtures/region-optimized';
import { memfdRegion } from '../support/memfd-region';

const FIXTURE = path.resolve(__dirname, '../fixtures/region-optimized.js');

/** Lines of /proc/self/maps that map a memfd of the addon's. */
function memfdMappings(): number {
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes('memfd:node-vfio-dma')).length;
}

/** Every accessor of `region` at `offset`, as calls. */
function everyAccess(region: Region, offset: number | bigint): [string, () => unknown][] {
  return [
    ['read8', () => region.read8(offset)],
    ['read16', () => region.read16(offset)],
    ['read32', () => region.read32(offset)],
    ['read64', () => region.read64(offset)],
    ['write8', () => region.write8(offset, 1)],
    ['write16', () => region.write16(offset, 1)],
    ['write32', () => region.write32(offset, 1)],
    ['write64', () => region.write64(offset, 1n)],
  ];
}

describe('Region after close()', () => {
  for (const mappable of [true, false]) {
    it(`every access of a ${mappable ? 'mapped' : 'pread/pwrite'} region throws ERR_VFIO_CLOSED, before any system call`, () => {
      const t = memfdRegion({ mappable });
      try {
        const { region } = t;
        for (const [, access] of everyAccess(region, 8)) access(); // each works while open
        region.close();
        const calls = JSON.stringify(t.calls);
        for (const offset of [8, 8n, 4095, -1, 1.5]) {
          for (const [name, access] of everyAccess(region, offset)) {
            assert.throws(access, { name: 'VfioStateError', code: 'ERR_VFIO_CLOSED', message: 'region 0 is closed' }, `${name}(${offset})`);
          }
        }
        assert.equal(JSON.stringify(t.calls), calls);
        assert.equal(region.mapped, false);
      } finally {
        t.dispose();
      }
    });
  }

  it('unmaps the region: its buffer is detached, `buffer` throws, the mapping is gone; close is idempotent', () => {
    const t = memfdRegion();
    try {
      const before = memfdMappings();
      const buffer = t.region.buffer;
      const view = new Uint32Array(buffer);
      t.region.write32(0, 0x12345678);
      assert.equal(view[0], 0x12345678);
      t.region.close();
      assert.equal(buffer.byteLength, 0, 'the ArrayBuffer is detached');
      assert.equal(view.length, 0);
      assert.equal(view[0], undefined);
      assert.throws(() => t.region.buffer, { name: 'VfioStateError', code: 'ERR_VFIO_CLOSED' });
      assert.equal(memfdMappings(), before - 1, 'the memfd mapping is unmapped');
      t.region.close();
      t.region[Symbol.dispose]();
      assert.deepEqual([...t.peek(0, 4)], [0x78, 0x56, 0x34, 0x12], 'the file keeps what was written');
    } finally {
      t.dispose();
    }
  });

  it('keeps its mapping alive while open, through garbage collections', () => {
    const t = memfdRegion();
    try {
      t.region.write64(0x100, 0xfeedfacecafebeefn);
      for (let i = 0; i < 3; i++) (global as { gc?: () => void }).gc?.();
      assert.equal(t.region.read64(0x100), 0xfeedfacecafebeefn);
      assert.equal(t.region.buffer.byteLength, 4096);
    } finally {
      t.dispose();
    }
  });

  it('throws ERR_VFIO_CLOSED from TurboFan-optimized code that accessed the region before close, every time', function () {
    this.timeout(60_000);
    const r = spawnSync(process.execPath, ['--allow-natives-syntax', FIXTURE], { encoding: 'utf8', timeout: 50_000 });
    assert.equal(r.status, 0, `the fixture failed (signal ${r.signal}): ${r.stderr}`);
    const result = JSON.parse(r.stdout) as RegionOptimizedResult;
    assert.equal(result.optimizedBeforeClose, true, 'the accessing function was optimized before the close');
    assert.equal(result.checksumOk, true, 'optimized accesses read back what they wrote');
    assert.deepEqual(result.errors, { 'VfioStateError:ERR_VFIO_CLOSED': result.callsAfterClose });
  });
});
