/**
 * The NVMe driver when what it stands on goes away under it, with commands
 * pending: the device closed, or its address space, without the
 * controller's own close(); and resets that overlap each other and I/O.
 * Every pending command fails through the promise or callback its
 * submitter holds, no timer or listener of the driver runs afterwards (the
 * queues' watchdog read CSTS through the closed BAR and threw from a
 * timer, uncaught), and nothing is thrown where nobody can catch it.
 * Reads only (the image keeps the host's pattern).
 */
import assert from 'node:assert/strict';
import { AddressSpace, DmaMapping } from '../../lib/address-space';
import { NvmeCompletionMode, NvmeController, NvmeError } from '../../lib/drivers/nvme';
import { DmaBuffer } from '../../lib/memory';
import { BDF, forEachBackend } from '../support/guest';
import { uncaughtDuring } from '../support/uncaught';

const MODES: NvmeCompletionMode[] = ['polled', 'interrupt'];

/** 100 reads of 4 KiB (more than the queue holds: some wait for a slot), half by promise, half by callback; their outcomes. */
function readMany(nvme: NvmeController, mapping: DmaMapping): Promise<(Error | undefined)[]> {
  const ns = nvme.namespace(1);
  const perBlock = 4096 / ns.blockSize;
  return Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      i % 2 === 0
        ? ns.read(i * perBlock, perBlock, { mapping, offset: (i % 16) * 4096 }).then(
            () => undefined,
            (e: Error) => e,
          )
        : new Promise<Error | undefined>((resolve) => ns.readInto(i * perBlock, perBlock, mapping, (i % 16) * 4096, resolve, i)),
    ),
  );
}

forEachBackend('NVMe driver torn down under pending commands', (backend) => {
  for (const mode of MODES) {
    describe(`${mode} completions`, () => {
      let space: AddressSpace;
      let buffer: DmaBuffer;
      beforeEach(() => {
        space = AddressSpace.open({ backend });
        buffer = DmaBuffer.allocate(16 * 4096);
      });
      afterEach(() => {
        space.close();
        buffer.close();
      });

      for (const what of ['the device', 'the address space'] as const) {
        it(`closing ${what} fails every pending command with ERR_NVME_ABORTED; no timer runs afterwards`, async () => {
          const nvme = await NvmeController.open(space, BDF.nvme, { mode, queueEntries: 16 });
          const mapping = space.map(buffer);
          const queue = nvme.queues[0];
          const uncaught = await uncaughtDuring(async () => {
            const outcomes = readMany(nvme, mapping);
            assert.ok(queue.awaited > 0, 'commands are pending');
            if (what === 'the device') nvme.device.close();
            else space.close();
            const errors = await outcomes;
            for (const e of errors) {
              // a read may have completed before the close; none is left pending, none failed otherwise
              if (e !== undefined) assert.equal((e as NvmeError).code, 'ERR_NVME_ABORTED', String(e));
            }
            assert.ok(
              errors.some((e) => e !== undefined),
              'the pending reads failed',
            );
            assert.equal(queue.awaited, 0);
            await nvme.close(); // closed already: resolves
          });
          assert.deepEqual(uncaught, []);
          assert.ok(nvme.device.isClosed);
        });
      }

      it('resets that overlap each other and I/O: every command settles, the controller works after, nothing uncaught', async function () {
        this.timeout(120_000);
        const nvme = await NvmeController.open(space, BDF.nvme, { mode, queueEntries: 16 });
        const mapping = space.map(buffer);
        const uncaught = await uncaughtDuring(async () => {
          const before = readMany(nvme, mapping);
          const first = nvme.reset();
          const second = nvme.reset(); // joins the first
          const during = nvme.adminCommand({ name: 'Keep Alive', opcode: 0x18 }).then(
            () => undefined,
            (e: Error) => e,
          );
          await Promise.all([first, second]);
          for (const e of await before) if (e !== undefined) assert.equal((e as NvmeError).code, 'ERR_NVME_ABORTED', String(e));
          const e = await during;
          if (e !== undefined) assert.ok(e instanceof NvmeError, String(e));
          for (const r of await readMany(nvme, mapping)) assert.equal(r, undefined);
        });
        assert.deepEqual(uncaught, []);
        await nvme.close();
      });
    });
  }
});
