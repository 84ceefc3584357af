/**
 * The NVMe driver against QEMU's nvme device, on every backend and in every
 * completion mode. The image behind the device is the outside witness: the
 * host wrote a known pattern into it before boot (nvmeBlock), and the guest
 * reads the file itself through 9p, which the host serves.
 *
 * Writes go only to the last 1 MiB of the image, 64 KiB per (backend, mode)
 * cell: the rest keeps the host's pattern for every reader.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { AddressSpace, DmaMapping } from '../../lib/address-space';
import {
  IoCallback,
  NvmeController,
  NvmeCompletionMode,
  NvmeError,
  NvmeNamespace,
  NvmeStatusError,
  nvmeCommands,
} from '../../lib/drivers/nvme';
import { DmaBuffer } from '../../lib/memory';
import { PhysList } from '../../lib/phys-list';
import { NVME_IMAGE_SIZE, NVME_SERIAL } from '../../vm/devices';
import { BDF, forEachBackend, pattern } from '../support/guest';
import { nvmeImageFile, readImage } from '../support/p2p-storage';
import { NVME_BLOCK, NVME_PATTERN_BLOCKS, nvmeBlock } from '../support/witness';

const MODES: NvmeCompletionMode[] = ['polled', 'interrupt'];
const BLOCKS_4K = NVME_IMAGE_SIZE / NVME_BLOCK;
/** The last 1 MiB is written by these tests; the host's pattern is trusted below NVME_PATTERN_BLOCKS. */
const OWNED_FIRST = BLOCKS_4K - 256;
const CELL_BLOCKS = 16;

/** Checks `bytes` against the host's pattern from 4 KiB block `block4k` on. */
function assertHostPattern(bytes: Uint8Array, block4k: number, what: string): void {
  for (let i = 0; i * NVME_BLOCK < bytes.length; i++) {
    const got = Buffer.from(bytes.buffer, bytes.byteOffset + i * NVME_BLOCK, Math.min(NVME_BLOCK, bytes.length - i * NVME_BLOCK));
    if (!got.equals(nvmeBlock(block4k + i).subarray(0, got.length))) {
      assert.fail(`${what}: 4 KiB block ${block4k + i} differs from the host's pattern (got '${got.subarray(0, 24).toString('latin1')}')`);
    }
  }
}

forEachBackend('NVMe driver', (backend) => {
  for (const mode of MODES) {
    describe(`${mode} completions`, () => {
      const cell = (backend === 'iommufd' ? 0 : 2) + (mode === 'polled' ? 0 : 1);
      const ownedBlock = OWNED_FIRST + cell * CELL_BLOCKS;
      let space: AddressSpace;
      let nvme: NvmeController;
      let ns: NvmeNamespace;
      /** 4 KiB blocks -> logical blocks of the namespace. */
      let lbaOf: (block4k: number) => number;
      let per4k: number;

      before(async () => {
        space = AddressSpace.open({ backend });
        nvme = await NvmeController.open(space, BDF.nvme, { mode });
        ns = nvme.namespace(1);
        per4k = NVME_BLOCK / ns.blockSize;
        lbaOf = (b) => b * per4k;
      });
      after(async () => {
        await nvme?.close();
        space?.close();
      });

      /** A fresh buffer mapped in the address space, released by `using`. */
      function mapped(bytes: number): { buffer: DmaBuffer; mapping: DmaMapping; [Symbol.dispose](): void } {
        const buffer = DmaBuffer.allocate(bytes);
        const mapping = space.map(buffer);
        return {
          buffer,
          mapping,
          [Symbol.dispose]: () => {
            mapping.unmap();
            buffer.close();
          },
        };
      }

      it('identifies the controller and namespace QEMU was started with', () => {
        const id = nvme.identity;
        assert.equal(id.serial, NVME_SERIAL);
        assert.equal(id.model, 'QEMU NVMe Ctrl');
        assert.equal(id.vendorId, nvme.device.pci.vendor);
        assert.ok(
          id.version.major >= 1 && id.namespaceCount >= 1,
          `version ${JSON.stringify(id.version)}, ${id.namespaceCount} namespaces`,
        );
        assert.deepEqual([...nvme.namespaces.keys()], [1]);
        assert.equal(fs.statSync(nvmeImageFile()).size, NVME_IMAGE_SIZE);
        assert.ok([512, 4096].includes(ns.blockSize), `block size ${ns.blockSize}`);
        assert.equal(ns.blocks, BigInt(NVME_IMAGE_SIZE / ns.blockSize));
        assert.equal(ns.bytes, BigInt(NVME_IMAGE_SIZE));
        assert.equal(nvme.queues.length, 1);
        assert.equal(nvme.queues[0].mode.kind, mode);
        assert.equal(nvme.interruptVectors.length, mode === 'interrupt' ? 2 : 0, "MSI-X: the admin queue's vector and one I/O vector");
        assert.equal(nvme.queues[0].mode.vector, mode === 'interrupt' ? 1 : undefined);
        // Doorbell Buffer Config where the controller offers it (QEMU's does): shadow doorbells
        assert.equal(nvme.shadowDoorbells, (id.oacs & (1 << 8)) !== 0, `OACS 0x${id.oacs.toString(16)}`);
      });

      it('reads back the pattern the host wrote into the image before boot', async () => {
        using m = mapped(NVME_BLOCK);
        for (const block of [0, 1, 2, 777, 4096, 12345, NVME_PATTERN_BLOCKS - 1]) {
          m.buffer.bytes.fill(0xee);
          await ns.read(lbaOf(block), per4k, m.mapping);
          assertHostPattern(m.buffer.bytes, block, `block ${block}`);
        }
      });

      it('reads into a PhysList of four DmaBuffers linked into an IovaWindow: PRP1 inside a page, then a PRP list', async () => {
        const bufs = [0, 1, 2, 3].map(() => DmaBuffer.allocate(NVME_BLOCK));
        try {
          for (const b of bufs) b.bytes.fill(0xee);
          // 512 B at the end of the first buffer, two whole buffers, 3.5 KiB at the start of the last: 12 KiB
          const list = PhysList.cpu([
            { buffer: bufs[0], offset: 3584, length: 512 },
            { buffer: bufs[1] },
            { buffer: bufs[2] },
            { buffer: bufs[3], offset: 0, length: 3584 },
          ]);
          using window = space.reserve(list.span);
          const link = window.link(list);
          assert.equal(link.iova % 4096n, 3584n, 'the mapping starts inside a page');
          const start = 3000;
          await ns.read(lbaOf(start), 3 * per4k, link);
          const got = Buffer.concat([bufs[0].bytes.subarray(3584), bufs[1].bytes, bufs[2].bytes, bufs[3].bytes.subarray(0, 3584)]);
          assertHostPattern(got, start, 'phys_list read');
          assert.ok(
            bufs[0].bytes.subarray(0, 3584).every((b) => b === 0xee),
            'nothing before the list was written',
          );
          assert.ok(
            bufs[3].bytes.subarray(3584).every((b) => b === 0xee),
            'nothing after the list was written',
          );
        } finally {
          for (const b of bufs) b.close();
        }
      });

      it("moves the controller's largest transfer (MDTS) in one command through a PRP list, and refuses one block more", async () => {
        const max = ns.maxTransferBlocks;
        assert.equal(max * ns.blockSize, nvme.maxTransferBytes);
        using m = mapped(nvme.maxTransferBytes + NVME_BLOCK);
        const start = 200;
        await ns.read(lbaOf(start), max, { mapping: m.mapping, offset: 0 });
        assertHostPattern(m.buffer.bytes.subarray(0, nvme.maxTransferBytes), start, 'MDTS read');
        await assert.rejects(ns.read(lbaOf(start), max + 1, m.mapping), {
          name: 'RangeError',
          message: /blocks must be an integer in 1\.\.\d+.*MDTS/,
        });
        await assert.rejects(ns.read(0, 1, { mapping: m.mapping, offset: m.mapping.length }), {
          name: 'RangeError',
          message: /needs \d+ bytes at offset/,
        });
      });

      it('writes through the driver, Flush, and the bytes are in the image file at the right offset', async () => {
        const blocks = 4;
        using m = mapped(blocks * NVME_BLOCK);
        const data = pattern(blocks * NVME_BLOCK, 1000 + cell);
        m.buffer.bytes.set(data);
        await ns.write(lbaOf(ownedBlock), blocks * per4k, m.mapping);
        await ns.flush();
        assert.deepEqual(new Uint8Array(readImage(ownedBlock * NVME_BLOCK, data.length)), data);
        // and the neighbours are untouched
        assert.ok(readImage((ownedBlock + blocks) * NVME_BLOCK, NVME_BLOCK).equals(nvmeBlock(ownedBlock + blocks)));
        m.buffer.bytes.fill(0);
        await ns.read(lbaOf(ownedBlock), blocks * per4k, m.mapping, { fua: true });
        assert.deepEqual(m.buffer.bytes, data);
      });

      it('Write with FUA and Write Zeroes reach the image too', async () => {
        const block = ownedBlock + 8;
        using m = mapped(2 * NVME_BLOCK);
        const data = pattern(2 * NVME_BLOCK, 2000 + cell);
        m.buffer.bytes.set(data);
        await ns.write(lbaOf(block), 2 * per4k, m.mapping, { fua: true });
        assert.deepEqual(new Uint8Array(readImage(block * NVME_BLOCK, data.length)), data);
        await ns.writeZeroes(lbaOf(block) + 1, per4k); // from the second logical block of the first 4 KiB
        await ns.flush();
        const image = readImage(block * NVME_BLOCK, data.length);
        const zeroFrom = ns.blockSize;
        assert.deepEqual(new Uint8Array(image.subarray(0, zeroFrom)), data.subarray(0, zeroFrom), 'the block before is kept');
        assert.ok(
          image.subarray(zeroFrom, zeroFrom + NVME_BLOCK).every((b) => b === 0),
          'zeroed',
        );
        assert.deepEqual(
          new Uint8Array(image.subarray(zeroFrom + NVME_BLOCK)),
          data.subarray(zeroFrom + NVME_BLOCK),
          'the blocks after are kept',
        );
      });

      it('1000 random 4 KiB reads at queue depth 32 all match the image', async function () {
        this.timeout(300_000);
        const depth = 32;
        const total = 1000;
        using m = mapped(depth * NVME_BLOCK);
        const before = nvme.queues[0].stats.peakInFlight;
        const interruptsBefore = nvme.interruptVectors[1]?.count ?? 0;
        let issued = 0;
        let x = 12345 + cell;
        const random = (): number => {
          x = (Math.imul(x, 1103515245) + 12345) >>> 0;
          return x % NVME_PATTERN_BLOCKS;
        };
        const started = process.hrtime.bigint();
        const lane = async (i: number): Promise<void> => {
          const view = m.buffer.bytes.subarray(i * NVME_BLOCK, (i + 1) * NVME_BLOCK);
          while (issued < total) {
            issued++;
            const block = random();
            view.fill(0xee);
            await ns.read(lbaOf(block), per4k, { mapping: m.mapping, offset: i * NVME_BLOCK });
            assertHostPattern(view, block, `random read of block ${block}`);
          }
        };
        await Promise.all(Array.from({ length: depth }, (_, i) => lane(i)));
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const iops = Math.round(total / seconds);
        const interrupts = (nvme.interruptVectors[1]?.count ?? 0) - interruptsBefore;
        console.log(
          `      [${backend}, ${mode}] ${total} x 4 KiB random reads at QD${depth}: ${iops} IOPS (${(seconds * 1000).toFixed(0)} ms${mode === 'interrupt' ? `, ${interrupts} interrupts` : ''})`,
        );
        assert.ok(nvme.queues[0].stats.peakInFlight >= depth || before >= depth, `peak in flight ${nvme.queues[0].stats.peakInFlight}`);
        if (mode === 'interrupt') assert.ok(interrupts > 0, "the I/O queue's MSI-X vector fired");
        else assert.equal(nvme.interruptVectors.length, 0);
      });

      it('readInto: 1000 random 4 KiB reads at queue depth 32 through callbacks (no promise per read) all match the image', async function () {
        this.timeout(300_000);
        const depth = 32;
        const total = 1000;
        using m = mapped(depth * NVME_BLOCK);
        const interruptsBefore = nvme.interruptVectors[1]?.count ?? 0;
        const blocks = new Array<number>(depth).fill(0);
        let x = 54321 + cell;
        const random = (): number => {
          x = (Math.imul(x, 1103515245) + 12345) >>> 0;
          return x % NVME_PATTERN_BLOCKS;
        };
        let issued = 0;
        let completed = 0;
        const started = process.hrtime.bigint();
        await new Promise<void>((resolve, reject) => {
          const next = (lane: number): void => {
            issued++;
            blocks[lane] = random();
            m.buffer.bytes.fill(0xee, lane * NVME_BLOCK, (lane + 1) * NVME_BLOCK);
            ns.readInto(lbaOf(blocks[lane]), per4k, m.mapping, lane * NVME_BLOCK, done, lane);
          };
          const done = (error: Error | undefined, lane: number): void => {
            try {
              assert.equal(error, undefined);
              assertHostPattern(
                m.buffer.bytes.subarray(lane * NVME_BLOCK, (lane + 1) * NVME_BLOCK),
                blocks[lane],
                `readInto of block ${blocks[lane]}`,
              );
            } catch (err) {
              reject(err);
              return;
            }
            if (++completed === total) resolve();
            else if (issued < total) next(lane);
          };
          for (let lane = 0; lane < depth; lane++) next(lane);
        });
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const interrupts = (nvme.interruptVectors[1]?.count ?? 0) - interruptsBefore;
        console.log(
          `      [${backend}, ${mode}] ${total} x 4 KiB random readInto at QD${depth}: ${Math.round(total / seconds)} IOPS (${(seconds * 1000).toFixed(0)} ms${mode === 'interrupt' ? `, ${interrupts} interrupts` : ''})`,
        );
        assert.ok(nvme.queues[0].stats.peakInFlight >= depth);
        assert.equal(nvme.queues[0].awaited, 0);
        if (mode === 'interrupt') assert.ok(interrupts > 0 && interrupts <= total, `${interrupts} interrupts`);
      });

      it('writeFrom puts the bytes into the image file; readInto reads them back; an error status comes through the callback', async () => {
        const block = ownedBlock + 12;
        using m = mapped(4 * NVME_BLOCK);
        const data = pattern(2 * NVME_BLOCK, 3000 + cell);
        m.buffer.bytes.set(data);
        const call = <T>(submit: (cb: IoCallback<T>) => void): Promise<{ error: Error | undefined; tag: T }> =>
          new Promise((resolve) => submit((error, tag) => resolve({ error, tag })));
        const wrote = await call<string>((cb) => ns.writeFrom(lbaOf(block), 2 * per4k, m.mapping, 0, cb, 'w', { fua: true }));
        assert.deepEqual(wrote, { error: undefined, tag: 'w' });
        assert.deepEqual(new Uint8Array(readImage(block * NVME_BLOCK, data.length)), data);
        const read = await call<number>((cb) => ns.readInto(lbaOf(block), 2 * per4k, m.mapping, 2 * NVME_BLOCK, cb, 7));
        assert.deepEqual(read, { error: undefined, tag: 7 });
        assert.deepEqual(m.buffer.bytes.subarray(2 * NVME_BLOCK), data);
        const failed = await call<number>((cb) => ns.readInto(ns.blocks, 1, m.mapping, 0, cb, 8));
        assert.equal(failed.tag, 8);
        assert.ok(failed.error instanceof NvmeStatusError, String(failed.error));
        assert.equal(failed.error.statusName, 'LBA Out of Range');
        assert.match(failed.error.message, /^Read \(opcode 0x02\) on queue 1, command \d+ failed: LBA Out of Range/);
        assert.throws(() => ns.readInto(0, per4k, m.mapping, 2, () => undefined), { name: 'RangeError', message: /dword aligned/ });
        assert.throws(() => ns.readInto(0, per4k, m.mapping, 4 * NVME_BLOCK, () => undefined), {
          name: 'RangeError',
          message: /needs 4096 bytes at offset 16384/,
        });
      });

      it('an error completion is an NvmeStatusError with the status code type and code', async () => {
        using m = mapped(2 * NVME_BLOCK);
        await assert.rejects(ns.read(ns.blocks, 1, m.mapping), (err: NvmeStatusError) => {
          assert.equal(err.name, 'NvmeStatusError');
          assert.equal(err.code, 'ERR_NVME_STATUS');
          assert.equal(err.statusCodeType, 0);
          assert.equal(err.statusCode, 0x80);
          assert.equal(err.statusName, 'LBA Out of Range');
          assert.equal(err.command, 'Read');
          assert.equal(err.queue, 1);
          assert.match(
            err.message,
            /^Read \(opcode 0x02\) on queue 1, command \d+ failed: LBA Out of Range \(SCT 0 Generic Command Status, SC 0x80\)/,
          );
          return true;
        });
        // straddling the end is out of range too
        await assert.rejects(ns.read(ns.blocks - 1n, 2, m.mapping), { code: 'ERR_NVME_STATUS', statusCode: 0x80 });
        await assert.rejects(nvme.io({ name: 'Vendor 7Fh', opcode: 0x7f, nsid: 1 }), {
          name: 'NvmeStatusError',
          statusCodeType: 0,
          statusCode: 0x01,
          message: /Invalid Command Opcode/,
        });
        // segments PRPs cannot express are refused before the controller sees them
        await assert.rejects(
          ns.read(0, 2 * per4k, [
            { iova: m.mapping.iova, length: 100 },
            { iova: m.mapping.iova + 4096n, length: 2 * NVME_BLOCK - 100 },
          ]),
          {
            name: 'RangeError',
            message: /segment 0 ends at IOVA 0x[0-9a-f]+, inside a page/,
          },
        );
        // the queue goes on
        await ns.read(0, per4k, m.mapping);
        assertHostPattern(m.buffer.bytes.subarray(0, NVME_BLOCK), 0, 'after errors');
      });

      it('a command that gets no completion times out with ETIMEDOUT, and the controller goes on', async () => {
        // an Asynchronous Event Request completes only when an event happens: none will
        const started = Date.now();
        await assert.rejects(nvme.adminCommand(nvmeCommands.asyncEventRequest(), { timeoutMs: 300 }), (err: NvmeError) => {
          assert.equal(err.name, 'NvmeError');
          assert.equal(err.code, 'ETIMEDOUT');
          assert.equal(err.queue, 0);
          assert.match(err.message, /^Asynchronous Event Request \(opcode 0x0c\) on queue 0, command \d+: no completion within 300 ms/);
          return true;
        });
        assert.ok(Date.now() - started >= 300);
        // the same through a callback: the error comes to it, with the tag
        const viaCallback = Date.now();
        const failed = await new Promise<{ error: Error | undefined; tag: string }>((resolve) => {
          nvme.adminQueue.send(nvmeCommands.asyncEventRequest(), (error, tag) => resolve({ error, tag }), 'aer', { timeoutMs: 200 });
        });
        assert.ok(Date.now() - viaCallback >= 200);
        assert.equal(failed.tag, 'aer');
        assert.equal((failed.error as NvmeError).code, 'ETIMEDOUT');
        assert.match(
          String(failed.error),
          /Asynchronous Event Request \(opcode 0x0c\) on queue 0, command \d+: no completion within 200 ms/,
        );
        using m = mapped(NVME_BLOCK);
        await ns.read(lbaOf(5), per4k, m.mapping);
        assertHostPattern(m.buffer.bytes, 5, 'after a time-out');
        assert.equal(nvme.adminQueue.inFlight, 2, 'the timed-out commands keep their identifiers');
      });

      it('Controller Fatal Status fails pending commands with ERR_NVME_FATAL, and reset() recovers', async () => {
        using m = mapped(NVME_BLOCK);
        nvme.device.setBusMaster(false); // the controller can no longer fetch commands: QEMU's reports CFS
        const viaCallback = new Promise<Error | undefined>((resolve) =>
          ns.readInto(lbaOf(10), per4k, m.mapping, 0, (error) => resolve(error)),
        );
        await assert.rejects(ns.read(lbaOf(9), per4k, m.mapping, { timeoutMs: 10_000 }), (err: NvmeError) => {
          assert.equal(err.code, 'ERR_NVME_FATAL');
          assert.match(err.message, /Controller Fatal Status/);
          return true;
        });
        assert.equal(((await viaCallback) as NvmeError).code, 'ERR_NVME_FATAL');
        await assert.rejects(ns.read(lbaOf(9), per4k, m.mapping), { code: 'ERR_NVME_FATAL' });
        const refused = await new Promise<Error | undefined>((resolve) =>
          ns.readInto(lbaOf(9), per4k, m.mapping, 0, (error) => resolve(error)),
        );
        assert.equal((refused as NvmeError).code, 'ERR_NVME_FATAL');
        await nvme.reset();
        assert.equal(nvme.fatalError, undefined);
        assert.equal(nvme.adminQueue.inFlight, 0, 'the reset freed every identifier');
        await ns.read(lbaOf(9), per4k, m.mapping);
        assertHostPattern(m.buffer.bytes, 9, 'after reset');
      });

      it('opens anew with four I/O queue pairs (plain doorbells), each with its own vector, and spreads commands over them', async () => {
        await nvme.close();
        // and plain doorbell writes this time (no Doorbell Buffer Config)
        nvme = await NvmeController.open(space, BDF.nvme, { mode, ioQueues: 4, queueEntries: 16, shadowDoorbells: false });
        assert.equal(nvme.shadowDoorbells, false);
        ns = nvme.namespace(1);
        assert.deepEqual(
          nvme.queues.map((q) => [q.id, q.entries, q.mode.vector]),
          [1, 2, 3, 4].map((id) => [id, 16, mode === 'interrupt' ? id : undefined]),
        );
        using m = mapped(64 * NVME_BLOCK);
        // 64 reads at once: 15 fit in each queue (16 entries), the rest wait for a free identifier
        await Promise.all(
          Array.from({ length: 64 }, (_, i) => ns.read(lbaOf(i * 7), per4k, { mapping: m.mapping, offset: i * NVME_BLOCK })),
        );
        for (let i = 0; i < 64; i++) assertHostPattern(m.buffer.bytes.subarray(i * NVME_BLOCK, (i + 1) * NVME_BLOCK), i * 7, `read ${i}`);
        for (const q of nvme.queues) {
          assert.equal(q.stats.completed, 16, `queue ${q.id} completed its share`);
          assert.ok(q.stats.peakInFlight <= 15, 'never more than entries - 1 in flight');
        }
        if (mode === 'interrupt') for (const v of nvme.interruptVectors.slice(1)) assert.ok(v.count > 0, `vector ${v.vector} fired`);
        await assert.rejects(ns.read(0, per4k, m.mapping, { queue: 5 }), {
          name: 'RangeError',
          message: /I\/O queue 5 does not exist \(1\.\.4\)/,
        });
      });
    });
  }
});
