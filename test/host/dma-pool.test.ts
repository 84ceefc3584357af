/**
 * DmaPool without a device: argument checks before any allocation, pieces
 * carved first fit so that pieces allocated in order are contiguous, free
 * ranges merged back (checked against a page-by-page model over random
 * allocate/free sequences), pieces usable as phys_list fragments, views of
 * the pool's memory, and what close() leaves.
 */
import assert from 'node:assert/strict';
import { DmaPiece, DmaPool } from '../../lib/dma-pool';
import { hintFor, VfioError } from '../../lib/errors';
import { DmaBuffer, PAGE_SIZE } from '../../lib/memory';
import { PhysList } from '../../lib/phys-list';

const PAGE = Number(PAGE_SIZE);

describe('DmaPool.create', () => {
  it('checks its arguments, naming them, before allocating', () => {
    assert.throws(() => DmaPool.create(0), { name: 'RangeError', message: /size must not be 0/ });
    assert.throws(() => DmaPool.create(PAGE + 1), { name: 'RangeError', message: /size \(4097\) must be a multiple of 4096/ });
    assert.throws(() => DmaPool.create(PAGE, { kind: 'hugetlb' }), {
      name: 'RangeError',
      message: /size \(4096\) must be a multiple of 2097152/,
    });
    assert.throws(() => DmaPool.create('1' as unknown as number), { name: 'TypeError', message: /size must be a bigint or a number/ });
    assert.throws(() => DmaPool.create(-PAGE), { name: 'RangeError', message: /size/ });
    assert.throws(() => DmaPool.create(PAGE, { kind: 'huge' as 'hugetlb' }), {
      name: 'TypeError',
      message: /kind must be one of anonymous, hugetlb, memfd/,
    });
    assert.throws(() => DmaPool.create(4 * PAGE, { chunk: 3 * PAGE }), {
      name: 'RangeError',
      message: /chunk \(0x3000\) must be a power of two/,
    });
    assert.throws(() => DmaPool.create(4 * PAGE, { chunk: 512 }), { name: 'RangeError', message: /chunk \(0x200\)/ });
    assert.throws(() => DmaPool.create(3 * PAGE, { chunk: 2 * PAGE }), {
      name: 'RangeError',
      message: /size \(0x3000\) must be a multiple of chunk \(0x2000\)/,
    });
    assert.throws(() => DmaPool.create(PAGE, { asFile: true }), {
      name: 'TypeError',
      message: /asFile needs a 'memfd' pool, not 'anonymous'/,
    });
    assert.throws(() => DmaPool.create(PAGE, { kind: 'memfd', asFile: 1 as unknown as boolean }), {
      name: 'TypeError',
      message: /asFile must be a boolean/,
    });
    assert.throws(() => DmaPool.create(PAGE, null as unknown as object), { name: 'TypeError', message: /options must be an object/ });
  });

  it('is ONE DmaBuffer of the kind asked', () => {
    using pool = DmaPool.create(8n * PAGE_SIZE, { kind: 'memfd', chunk: 2 * PAGE });
    assert.ok(pool.buffer instanceof DmaBuffer);
    assert.equal(pool.kind, 'memfd');
    assert.equal(pool.size, 8 * PAGE);
    assert.equal(pool.chunk, 2 * PAGE);
    assert.equal(pool.available, 8 * PAGE);
    assert.equal(pool.allocated, 0);
  });
});

describe('DmaPool.allocate and free', () => {
  it('hands out pieces in order, each right after the one before, rounded up to the chunk', () => {
    using pool = DmaPool.create(64 * PAGE);
    const sizes = [1, PAGE, PAGE + 1, 3 * PAGE, 100, 5 * PAGE - 1];
    const pieces = sizes.map((s) => pool.allocate(s));
    let at = 0;
    pieces.forEach((p, i) => {
      assert.ok(p instanceof DmaPiece);
      assert.equal(p.buffer, pool.buffer);
      assert.equal(p.offset, at, `piece ${i} starts where the one before ends`);
      assert.equal(p.length, Math.ceil(sizes[i] / PAGE) * PAGE);
      at += p.length;
    });
    assert.equal(pool.allocated, at);
    assert.equal(pool.available, 64 * PAGE - at);
    assert.equal(pool.allocate(2n * PAGE_SIZE).offset, at, 'bigint sizes too');
  });

  it('rounds to a larger chunk', () => {
    using pool = DmaPool.create(16 * PAGE, { chunk: 4 * PAGE });
    const a = pool.allocate(1);
    const b = pool.allocate(5 * PAGE);
    assert.deepEqual([a.offset, a.length, b.offset, b.length], [0, 4 * PAGE, 4 * PAGE, 8 * PAGE]);
  });

  it('checks the size asked for and says when nothing fits', () => {
    using pool = DmaPool.create(4 * PAGE);
    assert.throws(() => pool.allocate(0), { name: 'RangeError', message: /bytes must not be 0/ });
    assert.throws(() => pool.allocate(-1), { name: 'RangeError', message: /bytes/ });
    assert.throws(() => pool.allocate(1.5), { name: 'RangeError', message: /bytes/ });
    assert.throws(() => pool.allocate('4096' as unknown as number), { name: 'TypeError', message: /bytes must be a bigint or a number/ });
    assert.throws(() => pool.allocate(5 * PAGE), { name: 'RangeError', message: /bytes \(20480\) is more than the pool's 16384/ });
    const pieces = [0, 1, 2, 3].map(() => pool.allocate(PAGE));
    pieces[1].free();
    pieces[3].free();
    assert.throws(() => pool.allocate(2 * PAGE), {
      name: 'VfioStateError',
      code: 'ERR_VFIO_POOL_FULL',
      message: 'the DmaPool has no 8192 free contiguous bytes (8192 of 16384 free, the largest range 4096)',
    });
    assert.equal(pool.largestAvailable, PAGE);
  });

  it('reuses the lowest free range first and merges freed neighbours back into one range', () => {
    using pool = DmaPool.create(8 * PAGE);
    const p = Array.from({ length: 8 }, () => pool.allocate(PAGE));
    for (const i of [5, 3, 4]) p[i].free(); // 3..5 merge, from both sides
    assert.equal(pool.largestAvailable, 3 * PAGE);
    p[1].free();
    assert.equal(pool.allocate(PAGE).offset, PAGE, 'the lowest free range first');
    assert.equal(pool.allocate(3 * PAGE).offset, 3 * PAGE);
    assert.equal(pool.available, 0);
  });

  it('free is idempotent and only takes pieces of its own pool', () => {
    using pool = DmaPool.create(2 * PAGE);
    using other = DmaPool.create(2 * PAGE);
    const a = pool.allocate(PAGE);
    assert.throws(() => other.free(a), { name: 'TypeError', message: /piece must be a DmaPiece of this pool/ });
    assert.throws(() => pool.free({} as DmaPiece), TypeError);
    pool.free(a);
    a.free();
    assert.equal(a.freed, true);
    assert.equal(pool.available, 2 * PAGE, 'freed once');
    assert.throws(() => a.bytes, { code: 'ERR_VFIO_CLOSED', message: /freed/ });
    {
      using b = pool.allocate(2 * PAGE);
      assert.equal(b.offset, 0);
    }
    assert.equal(pool.available, 2 * PAGE, '`using` frees the piece');
  });

  it('keeps pieces disjoint and first fit over random allocate/free sequences (a page-by-page model)', () => {
    const pages = 97;
    using pool = DmaPool.create(pages * PAGE);
    const used = new Array<boolean>(pages).fill(false);
    const live: DmaPiece[] = [];
    let x = 12345;
    const rand = (n: number): number => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x % n;
    };
    for (let step = 0; step < 5000; step++) {
      if (live.length > 0 && rand(3) === 0) {
        const p = live.splice(rand(live.length), 1)[0];
        for (let i = p.offset / PAGE; i < (p.offset + p.length) / PAGE; i++) used[i] = false;
        p.free();
      } else {
        const n = 1 + rand(8);
        // The model's first fit: the lowest page where n free pages start.
        let want = -1;
        for (let i = 0, run = 0; i < pages; i++) {
          run = used[i] ? 0 : run + 1;
          if (run === n) {
            want = i - n + 1;
            break;
          }
        }
        if (want < 0) {
          assert.throws(() => pool.allocate(n * PAGE), { code: 'ERR_VFIO_POOL_FULL' }, `step ${step}`);
          continue;
        }
        const p = pool.allocate(n * PAGE);
        assert.equal(p.offset, want * PAGE, `step ${step}: first fit`);
        for (let i = want; i < want + n; i++) used[i] = true;
        live.push(p);
      }
      const free = used.filter((u) => !u).length;
      assert.equal(pool.available, free * PAGE, `step ${step}: accounting`);
    }
  });
});

describe('DmaPool pieces', () => {
  it('are phys_list fragments as they are: a list of pieces in order is contiguous in the pool', () => {
    using pool = DmaPool.create(64 * PAGE);
    const pieces = Array.from({ length: 16 }, (_, i) => pool.allocate((1 + (i % 3)) * PAGE));
    const list = PhysList.cpu(pieces);
    assert.equal(list.length, BigInt(pieces.reduce((n, p) => n + p.length, 0)));
    const packed = list.packedCpu()!;
    for (let i = 1; i < pieces.length; i++) {
      assert.equal(packed[3 * i], pool.buffer.handle, 'one memory');
      assert.equal(packed[3 * i + 1], packed[3 * (i - 1) + 1] + packed[3 * (i - 1) + 2], `fragment ${i} continues fragment ${i - 1}`);
    }
  });

  it('of a memfd pool with asFile are file fragments', () => {
    using pool = DmaPool.create(4 * PAGE, { kind: 'memfd', asFile: true });
    const list = PhysList.cpu([pool.allocate(PAGE), pool.allocate(PAGE)]);
    assert.ok(list.fragments.every((f) => 'asFile' in f && f.asFile));
    assert.equal(list.packedCpu(), null, 'file fragments take the file path');
  });

  it('view the pool memory itself', () => {
    using pool = DmaPool.create(4 * PAGE);
    pool.allocate(PAGE);
    const b = pool.allocate(2 * PAGE);
    b.bytes.fill(0xab);
    const all = pool.buffer.bytes;
    assert.equal(b.bytes.byteLength, 2 * PAGE);
    assert.ok(all.subarray(PAGE, 3 * PAGE).every((v) => v === 0xab));
    assert.ok(all.subarray(0, PAGE).every((v) => v === 0) && all.subarray(3 * PAGE).every((v) => v === 0));
  });

  it('have no IOVA until the pool is mapped whole', () => {
    using pool = DmaPool.create(PAGE);
    const p = pool.allocate(PAGE);
    assert.throws(() => p.dmaAddress(), { name: 'VfioStateError', code: 'ERR_VFIO_NOT_MAPPED', message: /DmaPool.map\(\) first/ });
    assert.throws(() => p.iova(), { code: 'ERR_VFIO_NOT_MAPPED' });
  });
});

describe('DmaPool.close', () => {
  it('closes the buffer: no more pieces, no more views; idempotent', () => {
    const pool = DmaPool.create(2 * PAGE);
    const p = pool.allocate(PAGE);
    const view = p.bytes;
    pool.close();
    pool.close();
    assert.equal(pool.closed, true);
    assert.equal(pool.buffer.closed, true);
    assert.equal(view.byteLength, 0, 'the ArrayBuffer is detached');
    assert.throws(() => pool.allocate(PAGE), { name: 'VfioStateError', code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => p.bytes, { code: 'ERR_VFIO_CLOSED' });
    assert.throws(() => PhysList.cpu([p]).checkOpen(), { code: 'ERR_VFIO_CLOSED' });
  });
});

describe("type1's dma_entry_limit", () => {
  it('ENOSPC from VFIO_IOMMU_MAP_DMA names the limit, its module parameter and what to do', () => {
    const hint = hintFor('ioctl(VFIO_IOMMU_MAP_DMA)', 'ENOSPC');
    assert.match(hint ?? '', /dma_entry_limit/);
    assert.match(hint ?? '', /vfio_iommu_type1\.dma_entry_limit, 65535 by default/);
    assert.match(hint ?? '', /\/sys\/module\/vfio_iommu_type1\/parameters\/dma_entry_limit/);
    assert.match(hint ?? '', /DmaPool/);
    const err = new VfioError('ENOSPC: No space left on device, ioctl(VFIO_IOMMU_MAP_DMA)', {
      code: 'ENOSPC',
      errno: -28,
      syscall: 'ioctl(VFIO_IOMMU_MAP_DMA)',
    });
    assert.match(
      err.message,
      /^ENOSPC: No space left on device, ioctl\(VFIO_IOMMU_MAP_DMA\) \(the container reached type1's dma_entry_limit/,
    );
    assert.equal(hintFor('ioctl(IOMMU_IOAS_MAP)', 'ENOSPC'), undefined, 'iommufd has no such limit');
  });
});
