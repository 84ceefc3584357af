/**
 * The NVMe queue pair's timers and callbacks, each defect the fuzz found
 * tried again on the fake controller (test/support/nvme-fake.ts): nothing
 * throws where nobody can catch it, and every command completes or fails
 * through the callback or promise its submitter holds.
 *
 *  - a backlog of 20,000 commands that fail before they are written (the
 *    CID handed from one to the next recursed and overflowed the stack);
 *  - a command object without an opcode (accepted, it threw from its
 *    completion): refused at submission;
 *  - the watchdog's health check throwing (CSTS read through a closed
 *    region) and doorbell writes throwing (a closed or undecoded BAR): the
 *    pending commands fail instead;
 *  - resetRings() with commands pending: a VfioStateError the caller gets;
 *  - a completion mode given something that is not a queue.
 */
import assert from 'node:assert/strict';
import { NvmeError, QueuePair } from '../../lib/drivers/nvme';
import { PolledCompletions } from '../../lib/drivers/nvme/completion-modes';
import { IoOpcode } from '../../lib/drivers/nvme/commands';
import { VfioStateError } from '../../lib/errors';
import { DmaBuffer } from '../../lib/memory';
import { FakeNvme } from '../support/nvme-fake';
import { sleep, uncaughtDuring } from '../support/uncaught';

const BLOCK = 512;

/** A polled queue pair of `entries` on a fake controller, with `health` for its watchdog. */
function queueOn(fake: FakeNvme, entries: number, health: () => NvmeError | undefined = () => undefined): QueuePair {
  const queue = new QueuePair({
    id: 1,
    entries,
    registers: fake.registers,
    space: fake.space.asAddressSpace,
    pageSize: 4096,
    prpPagesPerCommand: 1,
    mode: new PolledCompletions(),
    defaultTimeoutMs: 30_000,
    health,
  });
  fake.attach(1, entries, queue.sqIova, queue.cqIova);
  return queue;
}

describe('NVMe queue pair: timers and callbacks that outlive what they watch (fake controller)', function () {
  this.timeout(60_000);
  let fake: FakeNvme;
  let buffer: DmaBuffer;
  beforeEach(() => {
    fake = new FakeNvme(BLOCK);
    buffer = DmaBuffer.allocate(4096);
  });
  afterEach(() => {
    fake.stop();
    buffer.close();
    fake.bar.dispose();
  });

  it('a backlog of 20,000 commands failing before they are written: every one fails through its promise or callback, no stack overflow', async () => {
    const queue = queueOn(fake, 4); // 3 CIDs
    const mapping = fake.space.map(buffer);
    fake.swallow = () => true; // the first three are held, so the rest wait
    const held = [0, 1, 2].map((lba) =>
      queue.submit({ name: 'Read', opcode: IoOpcode.READ, nsid: 1, data: [{ iova: mapping.iova, length: BLOCK }], cdw10: lba }),
    );
    fake.start();
    while (fake.held.length < 3) await sleep(1);
    // a transfer longer than one PRP list page can describe: refused when a CID comes to it
    const tooLong = { name: 'Read', opcode: IoOpcode.READ, nsid: 1, data: [{ iova: mapping.iova, length: 4096 * 600 }] };
    const promised: Promise<unknown>[] = [];
    let called = 0;
    const failures: unknown[] = [];
    for (let i = 0; i < 20_000; i++) {
      if (i % 2 === 0)
        promised.push(
          queue.submit(tooLong).then(
            () => assert.fail(`command ${i} succeeded`),
            (e: unknown) => failures.push(e),
          ),
        );
      else
        queue.send(
          tooLong,
          (error) => {
            called++;
            failures.push(error);
          },
          i,
        );
    }
    const good = queue.submit({ name: 'Read', opcode: IoOpcode.READ, nsid: 1, data: [{ iova: mapping.iova, length: BLOCK }], cdw10: 9 });
    assert.equal(queue.awaited, 3 + 20_000 + 1);
    const uncaught = await uncaughtDuring(async () => {
      fake.swallow = () => false;
      fake.release(); // the three complete: their CIDs meet the backlog
      await Promise.all([...held, ...promised, good]);
      while (called < 10_000) await sleep(1);
    });
    assert.deepEqual(uncaught, []);
    assert.equal(failures.length, 20_000);
    for (const e of failures) assert.ok(e instanceof RangeError && /PRP entries/.test(e.message), String(e));
    assert.equal(queue.awaited, 0);
    assert.equal(queue.inFlight, 0);
    queue.close();
    mapping.unmap();
  });

  it('refuses a command without an opcode (or name) when it is submitted, before anything is written', async () => {
    const queue = queueOn(fake, 4);
    fake.start();
    const bad: unknown[] = [
      undefined,
      null,
      'Flush',
      [],
      { name: 'Flush' },
      { name: 'Flush', opcode: '0' },
      { name: 'Flush', opcode: 256 },
      { name: 'Flush', opcode: -1 },
      { name: 'Flush', opcode: 1.5 },
      { opcode: 0 },
    ];
    for (const cmd of bad) {
      await assert.rejects(queue.submit(cmd as never), (e: Error) => {
        assert.ok(e instanceof TypeError || e instanceof RangeError, String(e));
        assert.match(e.message, /^cmd(\.opcode|\.name)? must be/);
        return true;
      });
      assert.throws(
        () => queue.send(cmd as never, () => assert.fail('called'), 0),
        /^(TypeError|RangeError): cmd(\.opcode|\.name)? must be/,
      );
    }
    assert.equal(queue.stats.submitted, 0);
    assert.equal(queue.awaited, 0);
    const mapping = fake.space.map(buffer);
    const read = { name: 'Read', opcode: IoOpcode.READ, nsid: 1, data: [{ iova: mapping.iova, length: BLOCK }] };
    assert.equal((await queue.submit(read)).status, 0, 'a good command after them');
    mapping.unmap();
    queue.close();
  });

  it("the watchdog's health check throwing (CSTS through a closed region): pending commands fail, nothing is thrown from the timer", async () => {
    let broken = false;
    const queue = queueOn(fake, 8, () => {
      if (broken) throw new VfioStateError('region 0 is closed', 'ERR_VFIO_CLOSED');
      return undefined;
    });
    const mapping = fake.space.map(buffer);
    fake.swallow = () => true;
    fake.start();
    const pending = [0, 1, 2].map((lba) =>
      queue.submit({ name: 'Read', opcode: IoOpcode.READ, nsid: 1, data: [{ iova: mapping.iova, length: BLOCK }], cdw10: lba }),
    );
    const callback = new Promise<Error | undefined>((resolve) =>
      queue.send({ name: 'Read', opcode: IoOpcode.READ, nsid: 1, data: [{ iova: mapping.iova, length: BLOCK }] }, resolve, 0),
    );
    broken = true;
    const uncaught = await uncaughtDuring(async () => {
      for (const p of pending)
        await assert.rejects(p, { name: 'NvmeError', code: 'ERR_NVME_ABORTED', message: /cannot be reached: region 0 is closed/ });
      const e = (await callback) as NvmeError;
      assert.equal(e.code, 'ERR_NVME_ABORTED');
      assert.equal((e.cause as VfioStateError).code, 'ERR_VFIO_CLOSED');
    });
    assert.deepEqual(uncaught, []);
    assert.equal(queue.awaited, 0);
    queue.close();
    mapping.unmap();
  });

  it('doorbell writes throwing (a closed or undecoded BAR): the commands fail through their promises and callbacks, nothing uncaught', async () => {
    const queue = queueOn(fake, 8);
    const mapping = fake.space.map(buffer);
    fake.start();
    fake.registers.ring = () => {
      throw new VfioStateError('BAR 0 of 0000:00:05.0 cannot be accessed: its memory decoding is off', 'ERR_VFIO_MEMORY_DISABLED');
    };
    const uncaught = await uncaughtDuring(async () => {
      const promised = queue.submit({ name: 'Read', opcode: IoOpcode.READ, nsid: 1, data: [{ iova: mapping.iova, length: BLOCK }] });
      const called = new Promise<Error | undefined>((resolve) =>
        queue.send({ name: 'Read', opcode: IoOpcode.READ, nsid: 1, data: [{ iova: mapping.iova, length: BLOCK }] }, resolve, 0),
      );
      await assert.rejects(promised, { code: 'ERR_NVME_ABORTED', message: /memory decoding is off/ });
      assert.equal(((await called) as NvmeError).code, 'ERR_NVME_ABORTED');
    });
    assert.deepEqual(uncaught, []);
    queue.close();
    mapping.unmap();
  });

  it('resetRings() with commands pending throws a VfioStateError to its caller, and the queue goes on', async () => {
    const queue = queueOn(fake, 4);
    const mapping = fake.space.map(buffer);
    fake.swallow = () => true;
    fake.start();
    const pending = queue.submit({ name: 'Read', opcode: IoOpcode.READ, nsid: 1, data: [{ iova: mapping.iova, length: BLOCK }] });
    assert.throws(() => queue.resetRings(), {
      name: 'VfioStateError',
      code: 'ERR_VFIO_BUSY',
      message: /1 commands pending: fail\(\) them first/,
    });
    fake.swallow = () => false;
    fake.release();
    assert.equal((await pending).status, 0);
    queue.resetRings(); // nothing pending: allowed
    queue.close();
    mapping.unmap();
  });

  it('a completion mode refuses something that is not a queue when it is attached, before any timer could call it', async () => {
    const mode = new PolledCompletions();
    for (const q of [{}, null, { reap: 1, awaited: 0 }, { reap: () => 0 }]) assert.throws(() => mode.attach(q as never), TypeError);
    const uncaught = await uncaughtDuring(async () => {
      mode.kick(); // nothing attached: nothing scheduled
      await sleep(10);
    });
    assert.deepEqual(uncaught, []);
  });
});
