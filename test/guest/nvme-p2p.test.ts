/**
 * Peer-to-peer storage: the NVMe driver reads blocks straight into ivshmem's
 * BAR2 and writes them from it, through a P2P phys_list (a P2PProvider over
 * BAR2, linked into an IOVA window), with no bounce through CPU memory. On
 * both backends: iommufd maps each fragment as a VFIO dma-buf
 * (IOMMU_IOAS_MAP_FILE), type1 maps the BAR's mmap.
 *
 * Outside witnesses on both ends: the host's ivshmem file (the BAR's memory)
 * and the host's nvme image, both read directly through 9p.
 *
 * Disk: this suite writes the 1 MiB of the image just below nvme.test.ts's
 * last MiB, and puts the host's pattern back after each backend; reads come
 * from below it (the host's pattern). ivshmem: the whole BAR, put back after.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AddressSpace, DmaMapping, IovaWindow } from '../../lib/address-space';
import { VfioPciDevice } from '../../lib/device';
import { NvmeController, NvmeNamespace, NvmeRevokedError } from '../../lib/drivers/nvme';
import { DmaBuffer } from '../../lib/memory';
import { P2PProvider } from '../../lib/p2p-provider';
import { PhysList } from '../../lib/phys-list';
import { IVSHMEM_SIZE } from '../../vm/devices';
import { PROJECT_ROOT } from '../../vm/paths';
import { BDF, forEachBackend, KERNEL, pattern, readIvshmemHost as readHost, writeIvshmemHost as writeHost } from '../support/guest';
import { assertSameBytes, hostBlocks, IMAGE_BLOCKS_4K, readImage } from '../support/p2p-storage';
import { NVME_BLOCK } from '../support/witness';

/** The first 4 KiB block this suite writes; 256 of them (1 MiB), below nvme.test.ts's last MiB. */
const MINE = IMAGE_BLOCKS_4K - 512;
const MINE_BLOCKS = 256;
const BAR = IVSHMEM_SIZE;
const KiB = 1024;

/** Puts the host's pattern back into this suite's blocks of the disk, written from CPU memory. */
async function putBackHostPattern(space: AddressSpace, ns: NvmeNamespace): Promise<void> {
  const per4k = NVME_BLOCK / ns.blockSize;
  using buf = DmaBuffer.allocate(MINE_BLOCKS * NVME_BLOCK);
  buf.bytes.set(hostBlocks(MINE, MINE_BLOCKS));
  const m = space.map(buf);
  for (let b = 0; b < MINE_BLOCKS; b += 64) {
    await ns.write((MINE + b) * per4k, 64 * per4k, { mapping: m, offset: b * NVME_BLOCK });
  }
  await ns.flush();
  m.unmap();
}

/** Opens the controller in an address space of its own for `body`, then closes both. */
async function withNamespace<T>(body: (space: AddressSpace, ns: NvmeNamespace) => Promise<T>): Promise<T> {
  using space = AddressSpace.open();
  await using nvme = await NvmeController.open(space, BDF.nvme);
  return await body(space, nvme.namespace(1));
}

/** A promise of a readInto/writeFrom's end, for the callback path. */
function viaCallback(start: (cb: (error: Error | undefined) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => start((error) => (error ? reject(error) : resolve())));
}

/** `before` with `bytes` laid over `frags` in order: what the BAR holds after a read into those fragments. */
function scattered(before: Uint8Array, bytes: Uint8Array, frags: readonly { offset: number; length: number }[]): Buffer {
  const want = Buffer.from(before);
  let at = 0;
  for (const f of frags) {
    want.set(bytes.subarray(at, at + f.length), f.offset);
    at += f.length;
  }
  return want;
}

forEachBackend('NVMe peer-to-peer: blocks straight into and out of ivshmem BAR2', (backend) => {
  const seed = backend === 'iommufd' ? 100 : 200;
  let space: AddressSpace;
  let peer: VfioPciDevice;
  let provider: P2PProvider;
  let nvme: NvmeController;
  let ns: NvmeNamespace;
  /** Logical blocks per 4 KiB block. */
  let per4k: number;
  const lba = (block4k: number): number => block4k * per4k;
  let savedBar: Uint8Array;
  /** The BAR as the CPU sees it (the mmap). */
  let bar: Uint8Array;

  before(async () => {
    savedBar = readHost(0, BAR);
    space = AddressSpace.open({ backend });
    peer = space.openDevice(BDF.ivshmem);
    provider = new P2PProvider(peer, 2);
    bar = new Uint8Array(peer.bar(2).buffer);
    nvme = await NvmeController.open(space, BDF.nvme, { mode: 'polled' });
    ns = nvme.namespace(1);
    per4k = NVME_BLOCK / ns.blockSize;
  });

  after(async () => {
    try {
      if (ns) await putBackHostPattern(space, ns);
      if (savedBar) writeHost(0, savedBar);
    } finally {
      await nvme?.close();
      provider?.close();
      space?.close();
    }
  });

  it('reads LBAs into three non-adjacent BAR2 fragments: the ivshmem file holds exactly the image bytes there, nothing around changed', async () => {
    const frags = [
      { offset: 0x30000, length: 0x3000 },
      { offset: 0x80000, length: 0x2000 },
      { offset: 0x51000, length: 0x1000 },
    ];
    const src = 1000;
    for (const f of frags) writeHost(f.offset, new Uint8Array(f.length).fill(0xee));
    const before = readHost(0, BAR);
    const m = space.mapPhysList(PhysList.p2p(provider, frags));
    assert.equal(m.length, 24n * 1024n);
    await ns.read(lba(src), 6 * per4k, m);
    const image = readImage(src * NVME_BLOCK, 24 * KiB);
    assertSameBytes(image, hostBlocks(src, 6), 'the image holds the host pattern there');
    const want = scattered(before, image, frags);
    assertSameBytes(readHost(0, BAR), want, 'ivshmem file after the read');
    m.unmap();
  });

  it('readInto from inside a page, over three fragments (PRP1 with an offset, then a PRP list), lands byte for byte', async () => {
    // 0x800 + 0x1000 + 0x800 bytes: two 4 KiB blocks, three PRP entries
    const frags = [
      { offset: 0x38800, length: 0x800 },
      { offset: 0x61000, length: 0x1000 },
      { offset: 0x72000, length: 0x800 },
    ];
    const src = 1200;
    for (const f of frags) writeHost(f.offset - (f.offset % 4096), new Uint8Array(4096).fill(0xee));
    const before = readHost(0, BAR);
    const m = space.mapPhysList(PhysList.p2p(provider, frags));
    assert.equal(m.iova % 4096n, 0x800n, "the mapping keeps the first fragment's offset in its page");
    await viaCallback((cb) => ns.readInto(lba(src), 2 * per4k, m, 0, cb));
    const image = hostBlocks(src, 2);
    const want = scattered(before, image, frags);
    assertSameBytes(readHost(0, BAR), want, 'ivshmem file after readInto');
    m.unmap();
  });

  it('writes blocks from three non-adjacent BAR2 fragments; after a flush the host image holds them, its neighbours and the BAR unchanged', async () => {
    const frags = [
      { offset: 0x90000, length: 0x2000 },
      { offset: 0x40000, length: 0x1000 },
      { offset: 0xc0000, length: 0x3000 },
    ];
    const data = pattern(24 * KiB, seed + 1);
    let at = 0;
    for (const f of frags) {
      writeHost(f.offset, data.subarray(at, at + f.length));
      at += f.length;
    }
    const before = readHost(0, BAR);
    const m = space.mapPhysList(PhysList.p2p(provider, frags));
    await ns.write(lba(MINE), 6 * per4k, m);
    await ns.flush();
    assertSameBytes(readImage(MINE * NVME_BLOCK, data.length), data, 'the image after the write');
    assertSameBytes(readImage((MINE - 1) * NVME_BLOCK, NVME_BLOCK), hostBlocks(MINE - 1, 1), 'the block before');
    assertSameBytes(readImage((MINE + 6) * NVME_BLOCK, NVME_BLOCK), hostBlocks(MINE + 6, 1), 'the block after');
    assertSameBytes(readHost(0, BAR), before, 'ivshmem file (the device only read it)');
    // and through the callback path, from a slice of the mapping
    await viaCallback((cb) => ns.writeFrom(lba(MINE + 8), per4k, m, 0x3000, cb));
    await ns.flush();
    assertSameBytes(readImage((MINE + 8) * NVME_BLOCK, NVME_BLOCK), data.subarray(0x3000, 0x4000), 'writeFrom at offset 0x3000');
    m.unmap();
  });

  it('queue depth 32 of mixed P2P reads and writes over a 1 MiB window of 16 shuffled fragments: every byte checked', async function () {
    this.timeout(600_000);
    const FRAG = 64 * KiB;
    const order = [5, 12, 0, 9, 14, 3, 7, 10, 1, 15, 6, 11, 2, 13, 4, 8];
    const list = PhysList.p2p(
      provider,
      order.map((i) => ({ offset: i * FRAG, length: FRAG })),
    );
    using window = space.reserve(BAR);
    const m = window.link(list);
    const barOffset = (x: number): number => order[Math.floor(x / FRAG)] * FRAG + (x % FRAG);
    const LANES = 32;
    const LANE = BAR / LANES; // 32 KiB: 8 blocks of 4 KiB
    const LANE_BLOCKS = LANE / NVME_BLOCK;
    const ROUNDS = 6;
    /** What each lane's slot of the BAR holds now, and what its blocks of the disk hold. */
    const slot: Uint8Array[] = [];
    const disk: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(LANES).fill(undefined);
    let x = seed * 7919 + 1;
    const randomBlock = (): number => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x % (MINE - LANE_BLOCKS);
    };
    const submittedBefore = nvme.queues[0].stats.submitted;
    const lane = async (i: number): Promise<void> => {
      const offset = i * LANE;
      for (let r = 0; r < ROUNDS; r++) {
        const useCallback = (i + r) % 3 === 0;
        if ((i + r) % 2 === 0) {
          const src = randomBlock();
          if (useCallback) await viaCallback((cb) => ns.readInto(lba(src), LANE_BLOCKS * per4k, m, offset, cb));
          else await ns.read(lba(src), LANE_BLOCKS * per4k, { mapping: m, offset });
          slot[i] = hostBlocks(src, LANE_BLOCKS);
          assertSameBytes(readHost(barOffset(offset), LANE), slot[i], `lane ${i} round ${r}: read of block ${src}`);
        } else {
          const data = pattern(LANE, seed * 1000 + i * 10 + r);
          bar.set(data, barOffset(offset)); // the CPU fills the BAR; the controller takes it from there
          const dest = MINE + i * LANE_BLOCKS;
          if (useCallback) await viaCallback((cb) => ns.writeFrom(lba(dest), LANE_BLOCKS * per4k, m, offset, cb));
          else await ns.write(lba(dest), LANE_BLOCKS * per4k, { mapping: m, offset });
          slot[i] = data;
          disk[i] = data;
        }
      }
    };
    await Promise.all(Array.from({ length: LANES }, (_, i) => lane(i)));
    await ns.flush();
    assert.equal(nvme.queues[0].stats.submitted - submittedBefore, LANES * ROUNDS + 1);
    assert.ok(nvme.queues[0].stats.peakInFlight >= LANES, `peak in flight ${nvme.queues[0].stats.peakInFlight}`);
    // every byte of the window (the whole BAR), through the host's file
    const want = new Uint8Array(BAR);
    for (let i = 0; i < LANES; i++) want.set(slot[i], barOffset(i * LANE));
    assertSameBytes(readHost(0, BAR), want, 'the ivshmem file after QD32');
    // every byte of the disk blocks the lanes own, through the host's image
    for (let i = 0; i < LANES; i++) {
      const at = MINE + i * LANE_BLOCKS;
      assertSameBytes(readImage(at * NVME_BLOCK, LANE), disk[i] ?? hostBlocks(at, LANE_BLOCKS), `the image at block ${at} (lane ${i})`);
    }
    m.unmap();
  });

  it('refuses what the controller cannot address before sending anything; a list is of one kind', async () => {
    const q = nvme.queues[0];
    const submitted = q.stats.submitted;
    const before = readHost(0, BAR);
    const cb = (): void => assert.fail('no callback for a refused command');
    // the first fragment starts 2 bytes into a page: the data is not dword aligned
    const odd = space.mapPhysList(PhysList.p2p(provider, [{ offset: 0x30002, length: 0x1ffe }]));
    await assert.rejects(ns.read(lba(0), per4k, odd), { name: 'RangeError', message: /dword aligned/ });
    assert.throws(() => ns.readInto(lba(0), per4k, odd, 0, cb), { name: 'RangeError', message: /dword aligned/ });
    await assert.rejects(ns.write(lba(MINE), per4k, { mapping: odd, offset: 1 }), { name: 'RangeError', message: /dword aligned/ });
    odd.unmap();
    // past the end of what the list linked
    const two = space.mapPhysList(
      PhysList.p2p(provider, [
        { offset: 0x30000, length: 0x1000 },
        { offset: 0x50000, length: 0x1000 },
      ]),
    );
    await assert.rejects(ns.read(lba(0), 3 * per4k, two), {
      name: 'RangeError',
      message: /12288 bytes at offset 0 of a 8192-byte mapping/,
    });
    await assert.rejects(ns.write(lba(MINE), per4k, { mapping: two, offset: 0x1004 }), {
      name: 'RangeError',
      message: /4096 bytes at offset 4100 of a 8192-byte mapping/,
    });
    assert.throws(() => ns.writeFrom(lba(MINE), per4k, two, 0x1004, cb), { name: 'RangeError' });
    // unlinked
    two.unmap();
    await assert.rejects(ns.read(lba(0), per4k, two), { name: 'RangeError', message: /unmapped/ });
    assert.throws(() => ns.readInto(lba(0), per4k, two, 0, cb), { name: 'RangeError', message: /unmapped/ });
    // one kind per list: a CPU list takes DmaBuffers only, a P2P list ranges of its provider only
    assert.throws(() => PhysList.cpu([{ buffer: provider as unknown as DmaBuffer }]), { name: 'TypeError', message: /DmaBuffer/ });
    assert.throws(() => PhysList.p2p(provider, [{ offset: BAR - 4096, length: 8192 }]), {
      name: 'RangeError',
      message: /outside the provider/,
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(q.stats.submitted, submitted, 'no command was sent');
    assertSameBytes(readHost(0, BAR), before, 'the ivshmem file');
  });

  if (backend === 'iommufd') {
    it('exporter memory decode turned off with commands in flight: each completes or fails naming the revoked mapping, nothing else changes; relinked, the same I/O works', async function () {
      this.timeout(600_000);
      const CHUNK = 64 * KiB;
      // the odd 64 KiB chunks of the BAR, in the window; the even ones are never addressed
      const chunks = [1, 3, 5, 7, 9, 11, 13, 15];
      const list = PhysList.p2p(
        provider,
        chunks.map((c) => ({ offset: c * CHUNK, length: CHUNK })),
      );
      const span = chunks.length * CHUNK;
      // CPU memory linked right after the P2P range in the same window: must stay untouched
      using guard = DmaBuffer.allocate(CHUNK);
      guard.bytes.fill(0x5a);
      using window: IovaWindow = space.reserve(span + CHUNK);
      let m: DmaMapping = window.link(list);
      window.link(PhysList.cpu([{ buffer: guard }]), span);
      const barOffset = (x: number): number => chunks[Math.floor(x / CHUNK)] * CHUNK + (x % CHUNK);
      const LANES = 16;
      const LANE = span / LANES; // 32 KiB
      const LANE_BLOCKS = LANE / NVME_BLOCK;
      const isRead = (i: number): boolean => i % 2 === 0;
      const source = (i: number): number => 2000 + i * LANE_BLOCKS;
      const dest = (i: number): number => MINE + 64 + i * LANE_BLOCKS;
      const data = Array.from({ length: LANES }, (_, i) => pattern(LANE, seed * 77 + i));
      const prepare = (): void => {
        for (let i = 0; i < LANES; i++) {
          if (isRead(i)) bar.fill(0xee, barOffset(i * LANE), barOffset(i * LANE) + LANE);
          else bar.set(data[i], barOffset(i * LANE));
        }
      };
      const submit = (mapping: DmaMapping): Promise<unknown>[] =>
        Array.from({ length: LANES }, (_, i) =>
          isRead(i)
            ? ns.read(lba(source(i)), LANE_BLOCKS * per4k, { mapping, offset: i * LANE })
            : ns.write(lba(dest(i)), LANE_BLOCKS * per4k, { mapping, offset: i * LANE }),
        );

      /**
       * Submits the 16 commands, turns the exporter's memory decode off (after
       * the doorbell, or before it: the commands are in the SQ, the controller
       * finds them once the memory is gone), and checks what came of it; then
       * relinks and runs the same I/O again. Returns how many failed, and how
       * many reads found their slot untouched.
       */
      const revokeWhile = async (when: 'after the doorbell' | 'before the doorbell'): Promise<{ failed: number; blocked: number }> => {
        prepare();
        const barBefore = readHost(0, BAR);
        const imageBefore = readImage(MINE * NVME_BLOCK, MINE_BLOCKS * NVME_BLOCK);
        let revokedEvents = 0;
        m.on('revoked', () => revokedEvents++);
        const pending = submit(m);
        // the doorbell is rung in a microtask; no event-loop turn, so nothing is reaped before the revocation
        if (when === 'after the doorbell') await new Promise<void>((r) => queueMicrotask(r));
        const inFlight = nvme.queues[0].inFlight;
        peer.setMemoryEnabled(false);
        assert.equal(m.revoked, true, 'the mapping is marked revoked');
        assert.equal(revokedEvents, 1);
        const results = await Promise.allSettled(pending);
        peer.setMemoryEnabled(true);
        assert.equal(inFlight, LANES, 'every command was in flight when the memory went away');
        const failed = results.filter((r) => r.status === 'rejected').length;
        const barAfter = readHost(0, BAR);
        // read lanes that failed with their slot still as it was: their data never arrived (the DMA was blocked)
        const blocked = results.filter((r, i) => {
          const at = barOffset(i * LANE);
          return isRead(i) && r.status === 'rejected' && barAfter.subarray(at, at + LANE).every((b) => b === 0xee);
        }).length;
        console.log(
          `      [${backend}] memory decode off ${when}, ${inFlight} of ${LANES} in flight: ${LANES - failed} completed, ${failed} failed as revoked (${blocked} of ${LANES / 2} reads found their slot untouched)`,
        );
        results.forEach((r, i) => {
          if (r.status === 'fulfilled') return;
          const err = r.reason as NvmeRevokedError;
          assert.ok(err instanceof NvmeRevokedError, `lane ${i}: ${String(err)}`);
          assert.equal(err.code, 'ERR_NVME_REVOKED');
          assert.equal(err.mapping, m);
          assert.match(
            err.message,
            new RegExp(`${isRead(i) ? 'Read' : 'Write'} .*the mapping at IOVA 0x${m.iova.toString(16)} .*was revoked`),
          );
        });
        // nothing else changed: the BAR outside the read lanes, the CPU memory after the range, the disk outside the write lanes
        for (let i = 0; i < LANES; i++) {
          const at = barOffset(i * LANE);
          if (!isRead(i))
            assertSameBytes(barAfter.subarray(at, at + LANE), barBefore.subarray(at, at + LANE), `write lane ${i}'s source`, at);
          else if (results[i].status === 'fulfilled')
            assertSameBytes(barAfter.subarray(at, at + LANE), hostBlocks(source(i), LANE_BLOCKS), `read lane ${i}`, at);
        }
        for (let c = 0; c < 16; c += 2) {
          assertSameBytes(
            barAfter.subarray(c * CHUNK, (c + 1) * CHUNK),
            barBefore.subarray(c * CHUNK, (c + 1) * CHUNK),
            `BAR chunk ${c}`,
            c * CHUNK,
          );
        }
        assert.ok(
          guard.bytes.every((b) => b === 0x5a),
          'the CPU memory linked after the revoked range is untouched',
        );
        await ns.flush();
        const imageAfter = readImage(MINE * NVME_BLOCK, MINE_BLOCKS * NVME_BLOCK);
        const written = new Map<number, number>(); // byte offset in the area -> lane
        for (let i = 1; i < LANES; i += 2) written.set((dest(i) - MINE) * NVME_BLOCK, i);
        for (let off = 0; off < imageAfter.length; off += LANE) {
          const i = written.get(off);
          const got = imageAfter.subarray(off, off + LANE);
          if (i === undefined) assertSameBytes(got, imageBefore.subarray(off, off + LANE), `the image at block ${MINE + off / NVME_BLOCK}`);
          else if (results[i].status === 'fulfilled') assertSameBytes(got, data[i], `write lane ${i}`);
        }

        // refused before anything is sent
        const submitted = nvme.queues[0].stats.submitted;
        await assert.rejects(ns.read(lba(0), per4k, m), { name: 'VfioStateError', code: 'ERR_VFIO_REVOKED', message: /was revoked/ });
        assert.throws(() => ns.writeFrom(lba(MINE), per4k, m, 0, () => assert.fail('refused')), { code: 'ERR_VFIO_REVOKED' });
        assert.equal(nvme.queues[0].stats.submitted, submitted);

        // the IOMMU entries are gone for good (iommufd does not restore them): the same IOVAs given as raw
        // segments, which the driver cannot check, move nothing into the BAR
        writeHost(barOffset(0), new Uint8Array(NVME_BLOCK).fill(0xee));
        const raw = await ns.read(lba(source(0)), per4k, [{ iova: m.iova, length: NVME_BLOCK }]).then(
          () => 'completed',
          (err: Error) => err.message,
        );
        assertSameBytes(readHost(barOffset(0), NVME_BLOCK), new Uint8Array(NVME_BLOCK).fill(0xee), `the BAR behind revoked IOVAs (${raw})`);

        // relinked at the same IOVAs (fresh dma-bufs), the same I/O works
        const iova = m.iova;
        m.unmap();
        m = window.link(list);
        assert.equal(m.iova, iova);
        prepare();
        const again = await Promise.allSettled(submit(m));
        assert.deepEqual(
          again.map((r) => r.status),
          new Array(LANES).fill('fulfilled'),
        );
        await ns.flush();
        const barNow = readHost(0, BAR);
        for (let i = 0; i < LANES; i++) {
          const at = barOffset(i * LANE);
          assertSameBytes(
            barNow.subarray(at, at + LANE),
            isRead(i) ? hostBlocks(source(i), LANE_BLOCKS) : data[i],
            `lane ${i} after relinking`,
            at,
          );
          if (!isRead(i)) assertSameBytes(readImage(dest(i) * NVME_BLOCK, LANE), data[i], `the image of write lane ${i} after relinking`);
        }
        assert.ok(guard.bytes.every((b) => b === 0x5a));
        return { failed, blocked };
      };

      await revokeWhile('after the doorbell');
      // before the doorbell, the controller meets every command after the revocation: all fail, and no read reaches the BAR
      const early = await revokeWhile('before the doorbell');
      assert.equal(early.failed, LANES);
      assert.equal(early.blocked, LANES / 2, 'the IOMMU blocked every read: no slot changed');
    });
  }
});

describe(`examples/nvme-to-peer.ts, run as the README shows [${KERNEL} kernel]`, () => {
  let blockSize = 0;
  let savedBar: Uint8Array;
  const file = path.join(PROJECT_ROOT, '.vm', `nvme-to-peer-${process.pid}.bin`);
  before(async () => {
    savedBar = readHost(0, BAR);
    blockSize = await withNamespace(async (_space, ns) => Promise.resolve(ns.blockSize));
  });
  after(async () => {
    fs.rmSync(file, { force: true });
    await withNamespace(putBackHostPattern);
    if (savedBar) writeHost(0, savedBar);
  });

  it('copies a file disk -> peer BAR -> disk: the host image holds it at both LBAs, the ivshmem file in the BAR fragments it names, nothing else', function () {
    this.timeout(300_000);
    const data = pattern(200 * KiB + 123, 4242);
    fs.writeFileSync(file, data);
    const from = (MINE * NVME_BLOCK) / blockSize;
    const to = ((MINE + 128) * NVME_BLOCK) / blockSize;
    const before = readHost(0, BAR);
    const run = spawnSync(process.execPath, ['dist/examples/nvme-to-peer.js', file, '--from', String(from), '--to', String(to)], {
      cwd: PROJECT_ROOT,
      encoding: 'utf8',
      timeout: 240_000,
    });
    const transcript = `--- stdout\n${run.stdout}--- stderr\n${run.stderr}`;
    assert.equal(run.status, 0, transcript);
    const blocks = Math.ceil(data.length / blockSize);
    const lines = run.stdout.trim().split('\n');
    const backend = KERNEL === 'debian' ? 'type1' : 'iommufd';
    assert.match(
      lines[0],
      new RegExp(`^QEMU NVMe Ctrl: ${blockSize}-byte blocks; peer ${BDF.ivshmem} BAR2, ${BAR} bytes \\(${backend}\\)$`),
      transcript,
    );
    assert.match(
      lines[1],
      new RegExp(`^wrote .*nvme-to-peer-\\d+\\.bin \\(${data.length} bytes, ${blocks} blocks\\) at LBA ${from} from CPU memory$`),
    );
    assert.match(
      lines[2],
      new RegExp(
        `^disk -> peer: ${blocks} blocks from LBA ${from} into BAR offsets 0xf0000, 0xe0000, 0xd0000, 0xc0000 \\(IOVA 0x[0-9a-f]+\\), peer to peer$`,
      ),
    );
    assert.match(lines[3], new RegExp(`^peer -> disk: ${blocks} blocks to LBA ${to}, peer to peer$`));
    assert.match(lines[4], new RegExp(`^the BAR and LBAs ${from} and ${to} hold .* byte for byte$`));
    // the outside witnesses: the image at both LBAs, the ivshmem file in the four fragments
    assertSameBytes(readImage(from * blockSize, data.length), data, 'the image at --from');
    assertSameBytes(readImage(to * blockSize, data.length), data, 'the image at --to');
    const copied = new Uint8Array(blocks * blockSize); // the file, then the zeros that padded its last block
    copied.set(data);
    const want = Buffer.from(before);
    [0xf0000, 0xe0000, 0xd0000, 0xc0000].forEach((offset, k) => {
      want.set(copied.subarray(k * 64 * KiB, Math.min((k + 1) * 64 * KiB, copied.length)), offset);
    });
    assertSameBytes(readHost(0, BAR), want, 'the ivshmem file');
  });
});
