/**
 * The NVMe driver's queue pairs and namespace calls on the host, against a
 * controller played in JavaScript (test/support/nvme-fake.ts): what the
 * driver writes into the rings, PRP entries and lists, and doorbells is
 * what the fake reads and acts on, and every byte read is checked against
 * the fake namespace's pattern. Covers the callback path (readInto /
 * writeFrom, QueuePair.send) and the promise path: doorbell batching, phase
 * wrap, CIDs running out, error statuses, time-outs, failure and closing,
 * all reported through the API the caller holds. The PRP builder's own
 * rules are checked here too.
 */
import assert from 'node:assert/strict';
import { IoCallback, NvmeError, NvmeNamespace, NvmeRevokedError, NvmeStatusError, QueuePair } from '../../lib/drivers/nvme';
import { CompletionMode, InterruptCompletions, PolledCompletions } from '../../lib/drivers/nvme/completion-modes';
import { NamespaceIdentity } from '../../lib/drivers/nvme/identify';
import { buildPrps, contiguousPrp2, PrpListArea, prpEntries } from '../../lib/drivers/nvme/prp';
import { DmaBuffer } from '../../lib/memory';
import { EventEmitter } from 'node:events';
import { blockByte, fakeBlocks, FakeNvme } from '../support/nvme-fake';

const BLOCK = 512;

interface Rig {
  fake: FakeNvme;
  queue: QueuePair;
  ns: NvmeNamespace;
  /** Doorbell writes the driver made: [offset, value]. */
  rings: [number, number][];
  buffer: DmaBuffer;
  mapping: ReturnType<FakeNvme['space']['map']>;
  dispose(): void;
}

/** A queue pair of `entries` on the fake, a namespace over it, and a mapped buffer of `bytes`. */
function rig(entries: number, bytes: number, mode: CompletionMode = new PolledCompletions(), fatal?: () => NvmeError | undefined): Rig {
  const fake = new FakeNvme(BLOCK);
  const rings: [number, number][] = [];
  const ring = fake.registers.ring.bind(fake.registers);
  fake.registers.ring = (offset: number, value: number): void => {
    rings.push([offset, value]);
    ring(offset, value);
  };
  const queue = new QueuePair({
    id: 1,
    entries,
    registers: fake.registers,
    space: fake.space.asAddressSpace,
    pageSize: 4096,
    prpPagesPerCommand: 2,
    mode,
    defaultTimeoutMs: 30_000,
    health: fatal ?? (() => undefined),
  });
  fake.attach(1, entries, queue.sqIova, queue.cqIova);
  const identity = { size: BigInt(fake.blocks), blockSize: BLOCK } as NamespaceIdentity;
  const ns = new NvmeNamespace(
    {
      io: (cmd, o) => queue.submit(cmd, o),
      ioQueue: () => queue,
      get fatalSeen() {
        return fatal?.();
      },
      maxTransferBytes: 4 << 20,
    },
    1,
    identity,
  );
  const buffer = DmaBuffer.allocate(bytes);
  const mapping = fake.space.map(buffer);
  fake.start();
  return {
    fake,
    queue,
    ns,
    rings,
    buffer,
    mapping,
    dispose: () => {
      fake.stop();
      queue.close();
      mapping.unmap();
      buffer.close();
      fake.bar.dispose();
    },
  };
}

/** The outcome of one callback command, with the callback's arguments. */
function outcome<T>(): { done: Promise<{ error: Error | undefined; tag: T }>; callback: IoCallback<T> } {
  let settle!: (v: { error: Error | undefined; tag: T }) => void;
  const done = new Promise<{ error: Error | undefined; tag: T }>((r) => (settle = r));
  return { done, callback: (error, tag) => settle({ error, tag }) };
}

function assertBlocks(bytes: Uint8Array, lba: number, what: string): void {
  const want = fakeBlocks(lba, bytes.length / BLOCK, BLOCK);
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== want[i])
      assert.fail(`${what}: byte ${i} (block ${lba + Math.floor(i / BLOCK)}) is ${bytes[i]}, the namespace holds ${want[i]}`);
  }
}

/** `total` random 4 KiB reads at queue depth 32 through readInto, one lane per buffer page, each checked on arrival. */
async function randomReads(r: Rig, total: number): Promise<void> {
  let issued = 0;
  let completed = 0;
  let x = 7;
  const lbas = new Array<number>(32).fill(0);
  const random = (): number => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x % 100_000) * 8;
  };
  await new Promise<void>((resolve, reject) => {
    const next = (lane: number): void => {
      issued++;
      lbas[lane] = random();
      r.buffer.bytes.fill(0xee, lane * 4096, (lane + 1) * 4096);
      r.ns.readInto(lbas[lane], 8, r.mapping, lane * 4096, done, lane);
    };
    const done = (error: Error | undefined, lane: number): void => {
      try {
        assert.equal(error, undefined);
        assertBlocks(r.buffer.bytes.subarray(lane * 4096, (lane + 1) * 4096), lbas[lane], `lane ${lane}`);
      } catch (err) {
        reject(err);
        return;
      }
      if (++completed === total) resolve();
      else if (issued < total) next(lane);
    };
    for (let lane = 0; lane < 32; lane++) next(lane);
  });
}

describe('NVMe queue pair on a fake controller', function () {
  this.timeout(30_000); // a loaded host runs the fake controller slowly
  let r: Rig;
  afterEach(() => r?.dispose());

  it('readInto: 2000 random 4 KiB reads at queue depth 32, one callback and a lane tag, every byte checked', async () => {
    r = rig(64, 32 * 4096);
    await randomReads(r, 2000);
    assert.equal(r.queue.stats.completed, 2000);
    assert.equal(r.queue.stats.peakInFlight, 32);
    assert.equal(r.queue.inFlight, 0);
    assert.equal(r.fake.fetched.get(2), 2000);
    assert.equal(r.queue.stats.doorbellWrites, r.rings.length);
  });

  for (const budget of [Infinity, 3]) {
    it(`shadow doorbells, ${budget === Infinity ? 'a controller that keeps up' : 'a controller that lags behind'}: every read completes, every byte checked`, async () => {
      r = rig(64, 32 * 4096);
      using shadow = DmaBuffer.allocate(8192);
      const mapping = r.fake.space.map(shadow);
      try {
        r.queue.useShadowDoorbells(new Uint32Array(shadow.buffer), 1024);
        r.fake.useShadow(mapping.dmaAddress, budget);
        assert.equal(r.queue.shadowDoorbells, true);
        await randomReads(r, 3000);
        assert.equal(r.queue.stats.completed, 3000);
        assert.equal(r.queue.stats.doorbellWrites, r.rings.length);
        assert.ok(r.queue.stats.doorbellWrites <= 2 * r.queue.stats.reaps + 1);
      } finally {
        mapping.unmap();
      }
    });
  }

  it('shadow doorbells: the tail and head go to the shadow page; a register write only when the value passes the EventIdx', async () => {
    r = rig(64, 32 * 4096);
    r.fake.stop(); // the test plays the controller's EventIdx writes itself
    using shadow = DmaBuffer.allocate(8192);
    const words = new Uint32Array(shadow.buffer);
    r.queue.useShadowDoorbells(words, 1024);
    const SQ = 2; // queue 1's SQ tail: 1000h + 8, word 2 of the page; its CQ head word 3
    const submit = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) r.ns.readInto(i * 8, 8, r.mapping, i * 4096, () => undefined, i);
      await Promise.resolve();
    };
    await submit(1);
    assert.deepEqual(r.rings, [[0x1008, 1]], 'EventIdx 0: the first tail passes it');
    assert.equal(words[SQ], 1);
    await submit(2);
    assert.deepEqual(r.rings, [[0x1008, 1]], 'the controller has not looked since: no register write');
    assert.equal(words[SQ], 3);
    words[1024 + SQ] = 3; // the controller saw tail 3 and asks to hear of the next
    await submit(1);
    assert.deepEqual(r.rings, [
      [0x1008, 1],
      [0x1008, 4],
    ]);
    // the CQ head: the controller posts 4, the reap writes head 4 to the shadow; EventIdx 0 is passed, so the register too
    r.fake.useShadow(-1); // plain fetching from the register's value, for this step
    r.fake.step();
    r.rings.length = 0;
    assert.equal(r.queue.reap(), 4);
    assert.equal(words[SQ + 1], 4);
    assert.deepEqual(r.rings, [[0x100c, 4]]);
  });

  it('rings the SQ doorbell once for the commands of one synchronous run, and each doorbell once per reap', async () => {
    r = rig(64, 32 * 4096);
    r.fake.stop(); // the test steps the fake itself
    const results: Promise<{ error: Error | undefined; tag: number }>[] = [];
    for (let i = 0; i < 20; i++) {
      const o = outcome<number>();
      results.push(o.done);
      r.ns.readInto(i * 8, 8, r.mapping, i * 4096, o.callback, i);
    }
    assert.deepEqual(r.rings, [], 'no doorbell inside the synchronous run');
    await Promise.resolve();
    assert.deepEqual(r.rings, [[0x1008, 20]], 'one SQ tail write: all 20 entries');
    assert.equal(r.fake.step(), 20);
    r.rings.length = 0;
    assert.equal(r.queue.reap(), 20);
    assert.deepEqual(r.rings, [[0x100c, 20]], 'one CQ head write for the reap');
    for (const [i, p] of results.entries()) {
      const { error, tag } = await p;
      assert.equal(error, undefined);
      assert.equal(tag, i);
      assertBlocks(r.buffer.bytes.subarray(i * 4096, (i + 1) * 4096), i * 8, `read ${i}`);
    }
    // commands submitted from the callbacks of a reap go out with its end: CQ head, then one SQ tail
    const again = outcome<number>();
    r.ns.readInto(
      0,
      1,
      r.mapping,
      0,
      (error, tag) => {
        assert.equal(error, undefined);
        r.ns.readInto(8, 1, r.mapping, 512, again.callback, tag + 1);
        r.ns.readInto(16, 1, r.mapping, 1024, () => undefined, tag + 2);
      },
      100,
    );
    await Promise.resolve();
    r.fake.step();
    r.rings.length = 0;
    assert.equal(r.queue.reap(), 1);
    assert.deepEqual(r.rings, [
      [0x100c, 21],
      [0x1008, 23],
    ]);
    r.fake.step();
    r.queue.reap();
    assert.equal((await again.done).tag, 101);
  });

  it('wraps both rings many times: 1000 reads through 4 entries (3 CIDs), the rest waiting in order', async () => {
    r = rig(4, 8 * BLOCK);
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 1000 }, (_, i) => {
        const o = outcome<number>();
        r.ns.readInto(i, 1, r.mapping, (i % 8) * BLOCK, o.callback, i);
        return o.done.then(({ error, tag }) => {
          assert.equal(error, undefined);
          order.push(tag);
        });
      }),
    );
    assert.deepEqual(
      order,
      Array.from({ length: 1000 }, (_, i) => i),
      'completed in submission order',
    );
    assert.equal(r.queue.stats.peakInFlight, 3);
    assert.equal(r.queue.stats.completed, 1000);
  });

  it('PRP lists above 4 GiB: a 2 MiB + 4 KiB read from inside a page, its list chained over two list pages, lands byte for byte', async () => {
    r = rig(8, 3 << 20);
    assert.ok(r.mapping.dmaAddress > 2 ** 32, 'the fake maps above 4 GiB');
    const blocks = 4104; // from offset 512: a 3584-byte first page, then 513 more entries: 514 in all, two list pages
    r.buffer.bytes.fill(0xee);
    const o = outcome<string>();
    r.ns.readInto(4096, blocks, r.mapping, 512, o.callback, 'big');
    const { error, tag } = await o.done;
    assert.equal(error, undefined);
    assert.equal(tag, 'big');
    assertBlocks(r.buffer.bytes.subarray(512, 512 + blocks * BLOCK), 4096, '2 MiB read');
    assert.ok(
      r.buffer.bytes.subarray(0, 512).every((b) => b === 0xee),
      'nothing before the data',
    );
    assert.ok(
      r.buffer.bytes.subarray(512 + blocks * BLOCK).every((b) => b === 0xee),
      'nothing after it',
    );
    // and the promise path over the same PRP list
    r.buffer.bytes.fill(0);
    const c = await r.ns.read(100, blocks, { mapping: r.mapping, offset: 4096 });
    assert.equal(c.status, 0);
    assert.equal(c.sqId, 1);
    assertBlocks(r.buffer.bytes.subarray(4096, 4096 + blocks * BLOCK), 100, '2 MiB read, promise');
  });

  it('writeFrom and write put the bytes where the fake namespace keeps them; read and readInto get them back', async () => {
    r = rig(16, 4 * 4096);
    for (let i = 0; i < 8192; i++) r.buffer.bytes[i] = (i * 7) & 0xff;
    const o = outcome<undefined>();
    r.ns.writeFrom(50, 8, r.mapping, 0, o.callback, undefined, { fua: true });
    assert.equal((await o.done).error, undefined);
    await r.ns.write(58, 8, { mapping: r.mapping, offset: 4096 });
    for (let b = 0; b < 16; b++) {
      const got = r.fake.written.get(50 + b);
      assert.ok(got, `block ${50 + b} written`);
      assert.deepEqual(got, r.buffer.bytes.subarray(b * BLOCK, (b + 1) * BLOCK));
    }
    r.buffer.bytes.fill(0, 8192);
    await r.ns.read(50, 16, { mapping: r.mapping, offset: 8192 });
    assert.deepEqual(r.buffer.bytes.subarray(8192), r.buffer.bytes.subarray(0, 8192));
    assert.equal(r.fake.written.has(66), false, 'the neighbour is untouched');
    await r.ns.read(66, 1, r.mapping);
    assert.equal(r.buffer.bytes[5], blockByte(66, 5));
  });

  it('an error status reaches the callback as an NvmeStatusError naming the command, and the queue goes on', async () => {
    r = rig(16, 4096);
    const o = outcome<number>();
    r.ns.readInto(r.fake.blocks, 1, r.mapping, 0, o.callback, 9);
    const { error, tag } = await o.done;
    assert.equal(tag, 9);
    assert.ok(error instanceof NvmeStatusError);
    assert.equal(error.statusCode, 0x80);
    assert.equal(error.command, 'Read');
    assert.equal(error.queue, 1);
    assert.match(error.message, /^Read \(opcode 0x02\) on queue 1, command \d+ failed: LBA Out of Range/);
    await assert.rejects(r.ns.write(r.fake.blocks - 1, 2, r.mapping), { name: 'NvmeStatusError', statusCode: 0x80, command: 'Write' });
    const s = outcome<number>();
    r.queue.send({ name: 'Vendor 7Fh', opcode: 0x7f, nsid: 1 }, s.callback, 1);
    assert.match(String((await s.done).error), /Vendor 7Fh \(opcode 0x7f\).*Invalid Command Opcode/);
    await r.ns.read(3, 8, r.mapping);
    assertBlocks(r.buffer.bytes, 3, 'after the errors');
  });

  it('argument mistakes throw from readInto (nothing submitted) and reject from read', async () => {
    r = rig(16, 8192);
    const cb = (): void => assert.fail('no callback for a refused command');
    assert.throws(() => r.ns.readInto(0, 0, r.mapping, 0, cb), { name: 'RangeError', message: /blocks must be an integer in 1\.\.8192/ });
    assert.throws(() => r.ns.readInto(0, 1.5, r.mapping, 0, cb), { name: 'RangeError', message: /blocks/ });
    assert.throws(() => r.ns.readInto(-1, 1, r.mapping, 0, cb), { name: 'RangeError', message: /lba/ });
    assert.throws(() => r.ns.readInto(0, 1, r.mapping, 2, cb), { name: 'RangeError', message: /dword aligned/ });
    assert.throws(() => r.ns.readInto(0, 1, r.mapping, 8192, cb), {
      name: 'RangeError',
      message: /needs 512 bytes at offset 8192 of a 8192-byte mapping/,
    });
    assert.throws(() => r.ns.readInto(0, 1, {} as never, 0, cb), { name: 'TypeError', message: /mapping must be a DmaMapping/ });
    assert.throws(() => r.ns.readInto(0, 1, r.mapping, 0, 'no' as never), { name: 'TypeError', message: /callback must be a function/ });
    assert.throws(() => r.ns.readInto(0, 1, r.mapping, 0, cb, 0, { timeoutMs: -1 }), { name: 'RangeError', message: /timeoutMs/ });
    await assert.rejects(r.ns.read(0, 1, r.mapping, { timeoutMs: Number.NaN }), { name: 'RangeError', message: /timeoutMs/ });
    await assert.rejects(r.ns.read(0, 17, r.mapping), { name: 'RangeError', message: /needs 8704 bytes/ });
    assert.equal(r.queue.stats.submitted, 0);
    assert.equal(r.queue.inFlight, 0);
  });

  it('a revoked mapping (peer memory gone): refused before anything is sent; revoked in flight, commands fail naming it whatever the controller answered; waiting ones are never written', async () => {
    r = rig(4, 8192); // 3 CIDs
    r.fake.swallow = (lba) => lba === 50; // held: in flight until release()
    const held = [0, 512, 1024].map((offset) => r.ns.read(50, 1, { mapping: r.mapping, offset }));
    const waiting = r.ns.read(51, 1, { mapping: r.mapping, offset: 2048 }); // no free CID: it waits
    const late = outcome<number>();
    r.ns.readInto(r.fake.blocks, 1, r.mapping, 4096, late.callback, 5); // waits too; LBA Out of Range once written
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(r.queue.inFlight, 3);
    assert.equal(r.fake.fetched.get(2), 3);
    r.mapping.revoke();
    r.fake.swallow = () => false;
    r.fake.release(); // the controller says success
    for (const p of held) {
      await assert.rejects(p, (err: NvmeRevokedError) => {
        assert.ok(err instanceof NvmeRevokedError);
        assert.equal(err.code, 'ERR_NVME_REVOKED');
        assert.equal(err.mapping, r.mapping);
        assert.equal(err.statusError, undefined);
        assert.match(
          err.message,
          new RegExp(
            `^Read \\(opcode 0x02\\) on queue 1, command \\d+: its data buffer, the mapping at IOVA 0x${r.mapping.dmaAddress.toString(16)} \\(0x2000 bytes\\), was revoked`,
          ),
        );
        return true;
      });
    }
    await assert.rejects(waiting, { name: 'VfioStateError', code: 'ERR_VFIO_REVOKED', message: /was revoked/ });
    assert.equal((await late.done).error?.name, 'VfioStateError');
    assert.equal(r.fake.fetched.get(2), 3, 'the waiting commands were never written');
    // a new command on it: refused on the spot
    const submitted = r.queue.stats.submitted;
    const cb = (): void => assert.fail('no callback for a refused command');
    assert.throws(() => r.ns.readInto(0, 1, r.mapping, 0, cb), { name: 'VfioStateError', code: 'ERR_VFIO_REVOKED' });
    await assert.rejects(r.ns.write(0, 1, r.mapping), { code: 'ERR_VFIO_REVOKED' });
    assert.equal(r.queue.stats.submitted, submitted);
    assert.equal(r.queue.inFlight, 0);
  });

  it('a mapping revoked while the controller fails the command: NvmeRevokedError, with the status it gave', async () => {
    r = rig(16, 4096);
    r.fake.swallow = (lba) => lba === r.fake.blocks; // hold it, then let it fail with LBA Out of Range
    const o = outcome<number>();
    r.ns.readInto(r.fake.blocks, 1, r.mapping, 0, o.callback, 1);
    await new Promise((resolve) => setImmediate(resolve));
    r.mapping.revoke();
    r.fake.swallow = () => false;
    const { q, cid } = r.fake.held.splice(0)[0];
    (r.fake as unknown as { post(q: unknown, cid: number, status: number): void }).post(q, cid, 0x80);
    const { error } = await o.done;
    assert.ok(error instanceof NvmeRevokedError);
    assert.equal(error.statusError?.statusName, 'LBA Out of Range');
    assert.equal(error.cause, error.statusError);
    assert.match(error.message, /was revoked .*; the controller answered LBA Out of Range: unmap the mapping/);
  });

  it('a request waiting for a CID is refused at once when PRPs cannot express it (not when a CID frees up)', async () => {
    r = rig(2, 8192); // 1 CID
    r.fake.swallow = (lba) => lba === 9;
    const first = r.ns.read(9, 1, r.mapping);
    const cb = (): void => assert.fail('no callback for a refused command');
    assert.throws(() => r.ns.readInto(0, 1, r.mapping, 2, cb), { name: 'RangeError', message: /dword aligned/ });
    assert.equal(r.queue.stats.submitted, 1);
    r.fake.swallow = () => false;
    await new Promise((resolve) => setImmediate(resolve));
    r.fake.release();
    await first;
  });

  it('a command without a completion fails with ETIMEDOUT through its callback (never early); its CID stays taken until it completes', async () => {
    r = rig(16, 4096);
    r.fake.swallow = (lba) => lba === 77;
    const o = outcome<string>();
    const started = Date.now();
    r.ns.readInto(77, 1, r.mapping, 0, o.callback, 'late', { timeoutMs: 120 });
    const { error, tag } = await o.done;
    const elapsed = Date.now() - started;
    assert.equal(tag, 'late');
    assert.ok(error instanceof NvmeError);
    assert.equal(error.code, 'ETIMEDOUT');
    assert.match(
      error.message,
      /^Read \(opcode 0x02\) on queue 1, command \d+: no completion within 120 ms; the controller still holds it/,
    );
    assert.ok(elapsed >= 120 && elapsed < 5000, `failed after ${elapsed} ms`);
    assert.equal(r.queue.stats.timedOut, 1);
    assert.equal(r.queue.inFlight, 1, 'the CID stays taken');
    assert.equal(r.queue.awaited, 0);
    // the queue goes on, and the late completion frees the CID without calling anyone
    await r.ns.read(1, 1, r.mapping);
    r.fake.release();
    assert.equal(r.queue.reap(), 1, 'nothing polls an idle queue: reaped by hand');
    assert.equal(r.queue.inFlight, 0);
    assert.equal(r.queue.stats.completed, 1, 'the abandoned command is not counted as completed');
  });

  it('a failing controller fails every pending callback and promise with its error; after close, submissions fail with ERR_NVME_ABORTED, later', async () => {
    let fatal: NvmeError | undefined;
    r = rig(4, 4096, new PolledCompletions(), () => fatal);
    r.fake.swallow = () => true;
    const callbacks = [outcome<number>(), outcome<number>(), outcome<number>(), outcome<number>()];
    callbacks.forEach((o, i) => r.ns.readInto(i, 1, r.mapping, 0, o.callback, i)); // 3 CIDs: the 4th waits
    const promised = r.ns.read(9, 1, r.mapping);
    fatal = new NvmeError('the controller reports Controller Fatal Status', 'ERR_NVME_FATAL');
    for (const [i, o] of callbacks.entries()) {
      const { error, tag } = await o.done;
      assert.equal(tag, i);
      assert.equal((error as NvmeError).code, 'ERR_NVME_FATAL');
      assert.match(
        String(error),
        /^NvmeError: Read \(opcode 0x02\) on queue 1(, command \d+)?: the controller reports Controller Fatal Status/,
      );
    }
    await assert.rejects(promised, { code: 'ERR_NVME_FATAL' });
    // a fatal controller refuses new commands through the callback, not by throwing
    const refused = outcome<number>();
    r.ns.readInto(0, 1, r.mapping, 0, refused.callback, 5);
    assert.equal((await refused.done).error, fatal);
    fatal = undefined;
    r.queue.close();
    let called = false;
    r.queue.transfer(
      2,
      'Read',
      1,
      0,
      0,
      0,
      r.mapping.dmaAddress,
      512,
      (error) => {
        called = true;
        assert.equal((error as NvmeError).code, 'ERR_NVME_ABORTED');
      },
      0,
    );
    assert.equal(called, false, 'not called from inside the submitting call');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(called, true);
    await assert.rejects(r.queue.submit({ name: 'Flush', opcode: 0, nsid: 1 }), { code: 'ERR_NVME_ABORTED', message: /queue is closed/ });
  });

  it("interrupt mode: reaps on the source's interrupts, listening only while commands are awaited", async () => {
    const source = new EventEmitter();
    const mode = new InterruptCompletions(1, source as never);
    r = rig(16, 16 * 4096, mode);
    r.fake.stop();
    let interrupts = 0;
    const fire = setInterval(() => {
      if (r.fake.step() > 0) {
        interrupts++;
        source.emit('interrupt', 1);
      }
    }, 1);
    try {
      const results = Array.from({ length: 16 }, (_, i) => {
        const o = outcome<number>();
        r.ns.readInto(i * 8, 8, r.mapping, i * 4096, o.callback, i);
        return o.done;
      });
      assert.equal(source.listenerCount('interrupt'), 1);
      for (const p of results) assert.equal((await p).error, undefined);
      for (let i = 0; i < 16; i++) assertBlocks(r.buffer.bytes.subarray(i * 4096, (i + 1) * 4096), i * 8, `read ${i}`);
      assert.ok(interrupts >= 1 && interrupts <= 16, `${interrupts} interrupts`);
      assert.equal(source.listenerCount('interrupt'), 0, 'idle: not listening');
    } finally {
      clearInterval(fire);
    }
  });
});

describe('NVMe PRP entries and lists', () => {
  const PAGE = 4096;
  function area(pages: number): PrpListArea {
    return { dmaAddress: 0x1_2345_6000, words: new Uint32Array((pages * PAGE + 64) / 4), word: 16, pages };
  }
  const entryOf = (a: PrpListArea, i: number): number => a.words[a.word + 2 * i] + a.words[a.word + 2 * i + 1] * 2 ** 32;

  it('one page: PRP2 is 0; two pages: PRP2 is the second page; both as numbers above 4 GiB', () => {
    assert.equal(contiguousPrp2(0x1_0000_5000, 4096, PAGE, area(1)), 0);
    assert.equal(contiguousPrp2(0x1_0000_5200, 4096, PAGE, area(1)), 0x1_0000_6000);
    assert.equal(contiguousPrp2(0x1_0000_5ffc, 4, PAGE, area(1)), 0);
    const out = new Float64Array(2);
    buildPrps([{ address: 0x5200, length: 4096 }], PAGE, area(1), out);
    assert.deepEqual([...out], [0x5200, 0x6000]);
  });

  it('a transfer past two pages points PRP2 at a list; past 512 entries the list chains to its next page', () => {
    const a = area(2);
    const pages = 600;
    const base = 0x3_1000_0000;
    assert.equal(contiguousPrp2(base, pages * PAGE, PAGE, a), a.dmaAddress);
    for (let i = 0; i < 511; i++) assert.equal(entryOf(a, i), base + (i + 1) * PAGE);
    assert.equal(entryOf(a, 511), a.dmaAddress + PAGE, "the first list page's last entry points to the second");
    for (let i = 512; i < pages; i++) assert.equal(entryOf(a, i), base + i * PAGE);
    // exactly 513 entries: the first page's last slot holds the last data entry, no chain
    const b = area(2);
    assert.equal(contiguousPrp2(base, 513 * PAGE, PAGE, b), b.dmaAddress);
    assert.equal(entryOf(b, 511), base + 512 * PAGE);
  });

  it('refuses what PRPs cannot express, and more list pages than a command has', () => {
    /** PRP entries of ranges given as [address, length] pairs. */
    const entries = (...pairs: [number, number][]): number[] =>
      prpEntries(
        pairs.map(([address, length]) => ({ address, length })),
        PAGE,
      );
    assert.throws(() => contiguousPrp2(0x1002, 8, PAGE, area(1)), /dword aligned/);
    assert.throws(() => entries([0x1000, 100], [0x9000, 4096]), /segment 0 ends .* inside a page/);
    assert.throws(() => entries([0x1000, 4096], [0x9010, 4096]), /segment 1 starts .* inside a page/);
    assert.deepEqual(entries([0x1800, 2048], [0x9000, 5000]), [0x1800, 0x9000, 0xa000]);
    assert.throws(
      () => contiguousPrp2(0, 600 * PAGE, PAGE, area(1)),
      /needs 600 PRP entries \(2 list pages\); this queue has 1 per command/,
    );
  });
});
