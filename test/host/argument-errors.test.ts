/**
 * The argument errors the fuzz found as JavaScript's own messages ("Cannot
 * mix BigInt and other types", "x is not a function", "Cannot read
 * properties of undefined", "Cannot convert ... to a BigInt" as a
 * SyntaxError): each public entry now throws a TypeError or RangeError that
 * names the argument, before it does anything. And Region.writeBytes counts
 * bytes, not elements.
 */
import assert from 'node:assert/strict';
import * as lib from '../../lib/index';
import { memfdRegion } from '../support/memfd-region';
import { FakeNvme } from '../support/nvme-fake';

type Call = [what: string, call: () => unknown, error: typeof TypeError | typeof RangeError, names: RegExp];

const cases: Call[] = [
  ['new EduDevice(undefined)', () => new lib.EduDevice(undefined as never), TypeError, /^device must be a VfioPciDevice, not undefined/],
  ['EduDevice.open(buffer)', () => lib.EduDevice.open({} as never), TypeError, /^space must be an AddressSpace/],
  ['new NvmeNamespace({})', () => new lib.NvmeNamespace({} as never, 1, {} as never), TypeError, /^host\.io must be a function/],
  ['new NvmeNamespace(.., 0.5)', () => new lib.NvmeNamespace(fakeHost(), 0.5, { blockSize: 512, size: 8n } as never), RangeError, /^nsid/],
  [
    'nvmeCommands.readWrite(lba {})',
    () => lib.nvmeCommands.readWrite(2, 1, {} as never, 1, []),
    TypeError,
    /^lba must be a bigint or a number/,
  ],
  ['nvmeCommands.writeZeroes(blocks 2n)', () => lib.nvmeCommands.writeZeroes(1, 0n, 2n as never), TypeError, /^blocks must be a number/],
  ['nvmeCommands.setNumberOfQueues(2n)', () => lib.nvmeCommands.setNumberOfQueues(2n as never), TypeError, /^count must be a number/],
  ['nvmeCommands.createIoSq(symbol)', () => lib.nvmeCommands.createIoSq(Symbol() as never, 2, 0n, 1), TypeError, /^qid must be a number/],
  [
    'nvmeCommands.writeSubmission(null)',
    () => lib.nvmeCommands.writeSubmission(null as never, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
    TypeError,
    /^sq must be a Uint32Array/,
  ],
  [
    'nvmeCommands.encodeCommand(cmd null)',
    () => lib.nvmeCommands.encodeCommand(new Uint32Array(16), 0, null as never, 0, 0, 0),
    TypeError,
    /^cmd must be an NvmeCommand/,
  ],
  ['new NvmeRegisters({})', () => new lib.NvmeRegisters({} as never), TypeError, /^bar must be a Region/],
  ['decodeCapabilities(promise)', () => lib.decodeCapabilities(Promise.resolve(1) as never), TypeError, /^raw must be a bigint/],
  ['statusName(2^52, 3n)', () => lib.statusName(2 ** 52, 3n as never), RangeError, /^type must be an integer/],
  [
    'new NvmeStatusError(0, 0, undefined)',
    () => new lib.NvmeStatusError(0, 0, undefined as never),
    TypeError,
    /^context must be an object/,
  ],
  [
    'new NvmeRevokedError(context, undefined)',
    () => new lib.NvmeRevokedError({ command: 'Read', opcode: 2, queue: 1 }, undefined as never),
    TypeError,
    /^mapping must be a DmaMapping/,
  ],
  ['PhysList.encrypted("auto")', () => lib.PhysList.encrypted('auto' as never), TypeError, /^fragments must be an array/],
  ['PhysList.encrypted([undefined])', () => lib.PhysList.encrypted([undefined as never]), TypeError, /^fragment 0 must be an object/],
  ['PhysList.p2p(null, [])', () => lib.PhysList.p2p(null as never, []), TypeError, /^provider must be a P2PProvider, not null/],
  [
    'new P2PProvider(new Uint8Array(8), 1)',
    () => new lib.P2PProvider(new Uint8Array(8) as never, 1),
    TypeError,
    /^device must be a VfioPciDevice, not a Uint8Array/,
  ],
  ['new DeviceInterrupts(null)', () => new lib.DeviceInterrupts(null as never), TypeError, /^device must be a VfioPciDevice, not null/],
  ['new VfioError("m", undefined)', () => new lib.VfioError('m', undefined as never), TypeError, /^info must be an object/],
  [
    'new VfioError({}, ...)',
    () => new lib.VfioError({} as never, { code: 'EINVAL', errno: -22, syscall: 'open' }),
    TypeError,
    /^message must be a string/,
  ],
  [
    'new VfioError("", { memory: a null-prototype object })',
    () => new lib.VfioError('', { code: 'EINVAL', errno: -22, syscall: 'open', memory: Object.create(null) as never }),
    TypeError,
    /^info\.memory must be 'cpu', 'bar' or 'dma-buf', not an object/,
  ],
  [
    'new VfioError("", { memory: "gpu" })',
    () => new lib.VfioError('', { code: 'EINVAL', errno: -22, syscall: 'open', memory: 'gpu' as never }),
    TypeError,
    /^info\.memory must be 'cpu', 'bar' or 'dma-buf', not "gpu"/,
  ],
  ['new VfioStateError(symbol)', () => new lib.VfioStateError(Symbol() as never, 'X'), TypeError, /^message must be a string, not symbol/],
  ['new PolledCompletions(2n)', () => new lib.PolledCompletions(2n as never), TypeError, /^intervalMs must be a number/],
  ['PolledCompletions.attach({})', () => new lib.PolledCompletions().attach({} as never), TypeError, /^queue\.reap must be a function/],
  ['new InterruptCompletions(0, {})', () => new lib.InterruptCompletions(0, {} as never), TypeError, /^source\.on must be a function/],
  ['new QueuePair(undefined)', () => new lib.QueuePair(undefined as never), TypeError, /^options must be an object/],
  ['listVfioPciDevices(5)', () => lib.listVfioPciDevices(5 as never), TypeError, /^sysfsRoot must be a string/],
  ['AddressSpace.open({ type1: {} })', () => lib.AddressSpace.open({ type1: Object.create(null) as never }), TypeError, /^type1 must be/],
  [
    'DmaBuffer.allocate(4096, { kind: {} })',
    () => lib.DmaBuffer.allocate(4096, { kind: Object.create(null) as never }),
    TypeError,
    /^kind must be one of .*, not an object/,
  ],
  [
    'VfioPciDevice.exportDmaBuf(2, symbol)',
    () => (Object.create(lib.VfioPciDevice.prototype) as lib.VfioPciDevice).exportDmaBuf(2, Symbol() as never),
    TypeError,
    /^ranges must be an array, not symbol/,
  ],
  [
    'VfioPciDevice.regionInfo("0")',
    () => (Object.create(lib.VfioPciDevice.prototype) as lib.VfioPciDevice).regionInfo('0' as never),
    TypeError,
    /^index must be a number/,
  ],
  [
    'DeviceInterrupts.trigger({})',
    () => (Object.create(lib.DeviceInterrupts.prototype) as lib.DeviceInterrupts).trigger({} as never),
    TypeError,
    /^vectors must be a vector number or an iterable of them, not an object/,
  ],
  [
    'DmaPool.create(4096, { kind: {} })',
    () => lib.DmaPool.create(4096, { kind: Object.create(null) as never }),
    TypeError,
    /^kind must be one of .*, not an object/,
  ],
  ['DmaBuffer.allocate(4096, null)', () => lib.DmaBuffer.allocate(4096, null as never), TypeError, /^options must be an object, not null/],
  ['AddressSpace.open({ sysfs: 5 })', () => lib.AddressSpace.open({ sysfs: 5 as never }), TypeError, /^sysfs must be a string/],
];

function fakeHost(): lib.NamespaceHost {
  return {
    io: () => Promise.reject(new Error('no controller')),
    ioQueue: () => {
      throw new Error('no controller');
    },
    fatalSeen: undefined,
    maxTransferBytes: 1 << 20,
  };
}

describe('argument errors name the argument (what the fuzz found as engine errors)', () => {
  for (const [what, call, error, names] of cases) {
    it(what, () => {
      assert.throws(call, (err: Error) => {
        assert.ok(err instanceof error, `${what}: ${err.name}: ${err.message}`);
        assert.match(err.message, names);
        return true;
      });
    });
  }

  it('NvmeController.open(garbage) rejects with a TypeError naming space', async () => {
    await assert.rejects(lib.NvmeController.open(new Date() as never), {
      name: 'TypeError',
      message: /^space must be an AddressSpace, not a Date/,
    });
  });

  it('NvmeController.open: options are checked before the device is opened', async () => {
    await assert.rejects(lib.NvmeController.open({} as never), { name: 'TypeError', message: /^space/ });
    // a space of the right class is needed to reach the options: the check runs before openDevice
    const space = Object.create(lib.AddressSpace.prototype) as lib.AddressSpace;
    await assert.rejects(lib.NvmeController.open(space, '0000:00:05.0', { ioQueues: 1.5 }), { name: 'RangeError', message: /^ioQueues/ });
    await assert.rejects(lib.NvmeController.open(space, '0000:00:05.0', { mode: Object.create(null) as never }), {
      name: 'TypeError',
      message: /^mode must be 'polled' or 'interrupt', not an object/,
    });
  });

  it('NvmeNamespace I/O: a bigint or symbol block count is a TypeError, null options a TypeError', async () => {
    const ns = new lib.NvmeNamespace(fakeHost(), 1, { blockSize: 512, size: 8n } as never);
    await assert.rejects(ns.write(0, 2n as never, []), { name: 'TypeError', message: /^blocks must be a number/ });
    await assert.rejects(ns.writeZeroes(0, Symbol() as never), { name: 'TypeError', message: /^blocks must be a number/ });
    await assert.rejects(ns.flush(null as never), { name: 'TypeError', message: /^options must be an object, not null/ });
    assert.equal(ns.bytes, 4096n);
    // readInto/writeFrom: an offset of the wrong type is named before anything is submitted (a symbol made
    // the offset check itself throw "Cannot convert a Symbol value to a number")
    const m = new lib.DmaMapping({ release: () => undefined } as never, 0, 0x1000, 4096, 0, 4096, true, {});
    for (const offset of [Symbol('x'), 1n, '0', null])
      for (const call of [ns.readInto, ns.writeFrom])
        assert.throws(() => call(0, 1, m, offset as never, () => undefined, 0), {
          name: 'TypeError',
          message: /^offset must be a number, not /,
        });
    assert.throws(() => ns.readInto(0, 1, m, -1, () => undefined, 0), {
      name: 'RangeError',
      message: /^offset must be a non-negative integer/,
    });
  });

  it('DmaMapping listeners: an event that is not one of its own is a TypeError naming it', () => {
    const m = new lib.DmaMapping({ release: () => undefined } as never, 0, 0x1000, 4096, 0, 4096, true, {});
    assert.throws(() => m.on(Object.create(null) as never, () => undefined), {
      name: 'TypeError',
      message: /^event must be 'unmapped' or 'revoked', not an object/,
    });
    assert.throws(() => m.listenerCount('x' as never), { name: 'TypeError', message: /not 'x'/ });
    assert.equal(m.on('unmapped', () => undefined).listenerCount('unmapped'), 1);
  });

  it('QueuePair: null options, a transfer of the wrong types, short shadow doorbells, resetRings() after close', async () => {
    const fake = new FakeNvme(512);
    const queue = new lib.QueuePair({
      id: 1,
      entries: 4,
      registers: fake.registers,
      space: fake.space.asAddressSpace,
      pageSize: 4096,
      prpPagesPerCommand: 1,
      mode: new lib.PolledCompletions(),
      defaultTimeoutMs: 1000,
      health: () => undefined,
    });
    try {
      await assert.rejects(queue.submit(lib.nvmeCommands.flush(1), null as never), {
        name: 'TypeError',
        message: /^options must be an object, not null/,
      });
      await assert.rejects(queue.submit(lib.nvmeCommands.flush(1), { timeoutMs: 5n as never }), {
        name: 'TypeError',
        message: /^timeoutMs must be a number/,
      });
      await assert.rejects(queue.transferAsync(new Date() as never), {
        name: 'TypeError',
        message: /^opcode must be a number, not undefined/,
      });
      await assert.rejects(queue.transferAsync(null as never), { name: 'TypeError', message: /^t must be a Transfer object, not null/ });
      // with a command pending: fail() of anything but an NvmeError is refused and the command stays pending
      const pending = queue.submit(lib.nvmeCommands.flush(1));
      for (const bad of [undefined, new Error('plain'), 'text'])
        assert.throws(() => queue.fail(bad as never), { name: 'TypeError', message: /^error must be an NvmeError, not / });
      queue.fail(new lib.NvmeError('test ends it', 'ERR_NVME_ABORTED'));
      await assert.rejects(pending, { name: 'NvmeError', code: 'ERR_NVME_ABORTED', message: /test ends it/ });
      await assert.rejects(queue.submit({ name: 'v1', opcode: 0, data: 4096 as never }), {
        name: 'TypeError',
        message: /^cmd\.data must be an array/,
      });
      await assert.rejects(queue.submit({ name: 'x', opcode: 2, data: [{ iova: 0x10000n, length: 512n as never }] }), {
        name: 'TypeError',
        message: /^cmd\.data\[0\] must be an \{ iova: bigint, length: number \} segment/,
      });
      await assert.rejects(queue.submit({ name: 'x', opcode: 2, cdw10: 1n as never }), {
        name: 'TypeError',
        message: /^cmd\.cdw10 must be a number/,
      });
      // a length past what the queue's PRP lists take: a RangeError, not an array grown until V8 aborts (SIGTRAP), nor an endless loop
      for (const length of [2 ** 40, 169220804 * 4096, Infinity]) {
        assert.throws(() => queue.transfer(2, 'Read', 1, 0, 0, 0, 0x10000, length, () => undefined, 0), {
          name: 'RangeError',
          message: /PRP entries/,
        });
      }
      assert.throws(() => queue.useShadowDoorbells(new Uint32Array(2), 1), { name: 'RangeError', message: /shadow doorbells/ });
      assert.throws(() => queue.useShadowDoorbells([] as never, 1024), { name: 'TypeError', message: /^words must be a Uint32Array/ });
    } finally {
      queue.close();
      fake.bar.dispose();
    }
    assert.throws(() => queue.resetRings(), { name: 'VfioStateError', code: 'ERR_VFIO_CLOSED' });
  });

  it('AddressSpace.reserve/copyFrom/mapPhysList: null options and wrong objects are TypeErrors, checked first', () => {
    const space = Object.create(lib.AddressSpace.prototype) as lib.AddressSpace; // no backend: a check that came later would meet it
    assert.throws(() => space.reserve(40960, null as never), { name: 'TypeError', message: /^options must be an object, not null/ });
    assert.throws(() => space.copyFrom(undefined as never, undefined as never), {
      name: 'TypeError',
      message: /^source must be an AddressSpace/,
    });
    assert.throws(() => space.mapPhysList(null as never), { name: 'TypeError', message: /^list must be a PhysList, not null/ });
  });

  it('the IOVA allocator: noSpaceError, allocate and the constructors name what is wrong', () => {
    const a = new lib.IovaAllocator([{ start: 0x1000n, last: (1n << 32n) - 1n }]);
    assert.throws(() => a.noSpaceError({} as never), { name: 'TypeError', message: /^size must be a number/ });
    assert.throws(() => a.noSpaceError(Infinity), { name: 'RangeError', message: /^size Infinity/ });
    assert.throws(() => a.noSpaceError(4096, 0.5), { name: 'RangeError', message: /^align/ });
    assert.throws(() => a.noSpaceError(4096, 4096, -Infinity), { name: 'RangeError', message: /^limit/ });
    assert.throws(() => a.allocate(4096n, null as never), { name: 'TypeError', message: /^options must be an object, got null/ });
    assert.throws(() => new lib.IovaAllocator([], null as never), { name: 'TypeError', message: /^options must be an object/ });
    assert.throws(() => new lib.IovaNoSpaceError(1 as never, 1n, 1n, 1n, 1n), { name: 'TypeError', message: /^length must be a bigint/ });
    assert.throws(() => new lib.IovaAllocatorError(Symbol() as never, 'x'), { name: 'TypeError', message: /^code must be a string/ });
    assert.equal(a.noSpaceError(8192).code, 'ENOSPC');
  });

  it('the allocator errors are exported from the package', () => {
    assert.equal(typeof lib.IovaAllocatorError, 'function');
    assert.equal(typeof lib.IovaNoSpaceError, 'function');
    assert.ok(new lib.IovaNoSpaceError(4096n, 4096n, 1n << 32n, 0n, 0n) instanceof lib.IovaAllocatorError);
  });
});

describe('Region.readBytes and writeBytes count bytes', () => {
  it('writeBytes of a Float64Array that does not fit is refused (it wrote 4 of 8 bytes and said 4)', () => {
    const r = memfdRegion({ size: 4096 });
    try {
      assert.throws(() => r.region.writeBytes(4096 - 4, new Float64Array(1)), { name: 'RangeError', message: /\+8\) runs past the end/ });
      assert.deepEqual(r.calls.pwrite, []);
      assert.equal(r.region.writeBytes(4096 - 8, new Float64Array([1.5])), 8);
      assert.deepEqual([...r.peek(4096 - 8, 8)], [...new Uint8Array(new Float64Array([1.5]).buffer)]);
      assert.equal(r.region.writeBytes(0, new DataView(new ArrayBuffer(12))), 12);
      assert.throws(() => r.region.writeBytes(0, [1, 2] as never), { name: 'TypeError', message: /^data must be a Uint8Array/ });
    } finally {
      r.dispose();
    }
  });

  it('readBytes(off, {}) is a TypeError naming length (it was a SyntaxError)', () => {
    const r = memfdRegion({ size: 4096 });
    try {
      assert.throws(() => r.region.readBytes(0, {} as never), { name: 'TypeError', message: /^length must be a number, not an object/ });
      assert.throws(() => r.region.readBytes(0, 1.5), { name: 'RangeError', message: /^length/ });
      assert.throws(() => r.region.readBytes(4000, 200), { name: 'RangeError', message: /runs past the end/ });
      assert.equal(r.region.readBytes(0, 0).length, 0);
    } finally {
      r.dispose();
    }
  });
});
