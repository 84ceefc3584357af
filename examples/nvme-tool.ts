/**
 * A small NVMe tool over the TypeScript driver, for the test guest (or any
 * host with an NVMe controller bound to vfio-pci):
 *
 *   npx node-vfio vm run -- node dist/examples/nvme-tool.js identify
 *   npx node-vfio vm run -- node dist/examples/nvme-tool.js read 0 8            (hex dump)
 *   npx node-vfio vm run -- node dist/examples/nvme-tool.js read 0 8 --out x.bin
 *   npx node-vfio vm run -- node dist/examples/nvme-tool.js write 129024 README.md   (the last MiB of the 64 MiB image)
 *   npx node-vfio vm run -- node dist/examples/nvme-tool.js flush
 *   npx node-vfio vm run -- node dist/examples/nvme-tool.js bench --qd 32 --count 2000 --mode both
 *
 * LBAs and counts are in the namespace's logical blocks. Options: --bdf
 * (default 0000:00:05.0), --backend auto|iommufd|type1, --mode
 * polled|interrupt, --nsid N, --queues N, --shadow off (plain doorbell
 * writes, no Doorbell Buffer Config); bench's --api callback (default:
 * readInto, no promise per read) or promise (read).
 */
import * as fs from 'node:fs';
import { AddressSpace, BackendChoice, DmaBuffer, NvmeCompletionMode, NvmeController, NvmeNamespace } from '../lib';

/** A mistake in the command line: printed as its message alone. */
class UsageError extends Error {}

interface Args {
  command: string;
  positional: string[];
  flags: Map<string, string>;
}

const USAGE = `usage: nvme-tool identify | read LBA COUNT [--out FILE] | write LBA FILE | flush | bench [--qd N] [--count N] [--blocks N] [--rounds N] [--mode polled|interrupt|both] [--api callback|promise]
options: --bdf BDF (0000:00:05.0) --backend auto|iommufd|type1 --mode polled|interrupt --nsid N --queues N --shadow on|off`;

function parse(argv: string[]): Args {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) flags.set(argv[i].slice(2), argv[++i] ?? '');
    else positional.push(argv[i]);
  }
  const command = positional.shift();
  if (!command) throw new UsageError(USAGE);
  return { command, positional, flags };
}

function intArg(value: string | undefined, name: string): number {
  const n = Number(value);
  if (value === undefined || !Number.isSafeInteger(n) || n < 0)
    throw new UsageError(`${name} must be a non-negative integer, not ${value ?? 'missing'}\n${USAGE}`);
  return n;
}

async function open(space: AddressSpace, a: Args, mode = a.flags.get('mode') as NvmeCompletionMode | undefined): Promise<NvmeController> {
  return NvmeController.open(space, a.flags.get('bdf') ?? '0000:00:05.0', {
    mode: mode ?? 'polled',
    ioQueues: a.flags.has('queues') ? intArg(a.flags.get('queues'), '--queues') : undefined,
    shadowDoorbells: a.flags.get('shadow') !== 'off',
  });
}

function identify(nvme: NvmeController): void {
  const id = nvme.identity;
  const cap = nvme.registers.cap;
  const vs = nvme.registers.version;
  console.log(`controller ${nvme.device.bdf}: ${id.model} (serial ${id.serial}, firmware ${id.firmware})`);
  console.log(`  PCI vendor 0x${id.vendorId.toString(16)}, NVMe ${vs.major}.${vs.minor}.${vs.tertiary}, controller ID ${id.controllerId}`);
  console.log(
    `  CAP: queues up to ${cap.maxQueueEntries} entries, timeout ${cap.readyTimeoutMs} ms, doorbell stride ${cap.doorbellStride} B, pages ${cap.minPageSize}..${cap.maxPageSize} B`,
  );
  console.log(
    `  max transfer ${nvme.maxTransferBytes} B (MDTS ${id.mdts}), volatile write cache ${id.volatileWriteCache ? 'yes' : 'no'}, ${id.namespaceCount} namespace IDs`,
  );
  console.log(`  I/O queues: ${nvme.queues.map((q) => `${q.id} (${q.entries} entries, ${q.mode.kind})`).join(', ')}`);
  console.log(`  OACS 0x${id.oacs.toString(16)}: shadow doorbells ${nvme.shadowDoorbells ? 'in use' : 'not in use'}`);
  for (const ns of nvme.namespaces.values()) {
    const mib = Number(ns.bytes) / 2 ** 20;
    console.log(
      `namespace ${ns.nsid}: ${ns.blocks} blocks of ${ns.blockSize} B (${mib} MiB), LBA format ${ns.identity.formatIndex} of ${ns.identity.lbaFormats.length}`,
    );
  }
}

function hexdump(bytes: Uint8Array, base: bigint): void {
  for (let i = 0; i < bytes.length; i += 16) {
    const row = bytes.subarray(i, i + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const text = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    console.log(`${(base + BigInt(i)).toString(16).padStart(10, '0')}  ${hex.padEnd(47)}  ${text}`);
  }
}

/** Reads `count` blocks from `lba`, a transfer of at most MDTS at a time. */
async function read(space: AddressSpace, ns: NvmeNamespace, lba: bigint, count: number, out?: string): Promise<void> {
  const chunk = ns.maxTransferBlocks;
  using buf = DmaBuffer.allocate(Math.ceil((chunk * ns.blockSize) / 4096) * 4096);
  const m = space.map(buf);
  const fd = out ? fs.openSync(out, 'w') : undefined;
  try {
    for (let done = 0; done < count; done += chunk) {
      const n = Math.min(chunk, count - done);
      await ns.read(lba + BigInt(done), n, m);
      const bytes = buf.bytes.subarray(0, n * ns.blockSize);
      if (fd !== undefined) fs.writeSync(fd, bytes);
      else hexdump(bytes, (lba + BigInt(done)) * BigInt(ns.blockSize));
    }
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
    m.unmap();
  }
}

/** Writes FILE at `lba` (the last block padded with zeros), then Flush. */
async function write(space: AddressSpace, ns: NvmeNamespace, lba: bigint, file: string): Promise<void> {
  const data = fs.readFileSync(file);
  if (data.length === 0) throw new Error(`${file} is empty`);
  const blocks = Math.ceil(data.length / ns.blockSize);
  const chunk = ns.maxTransferBlocks;
  using buf = DmaBuffer.allocate(Math.ceil((chunk * ns.blockSize) / 4096) * 4096);
  const m = space.map(buf);
  try {
    for (let done = 0; done < blocks; done += chunk) {
      const n = Math.min(chunk, blocks - done);
      buf.bytes.fill(0);
      buf.bytes.set(data.subarray(done * ns.blockSize, (done + n) * ns.blockSize));
      await ns.write(lba + BigInt(done), n, m);
    }
    await ns.flush();
  } finally {
    m.unmap();
  }
  console.log(`wrote ${data.length} bytes (${blocks} blocks) at LBA ${lba}, flushed`);
}

/** How the bench submits: readInto with a callback (no promise per read), or read's promises. */
type Api = 'callback' | 'promise';

/** Random reads at a fixed queue depth; returns I/O per second. */
async function bench(space: AddressSpace, ns: NvmeNamespace, qd: number, count: number, blocks: number, api: Api): Promise<number> {
  const bytes = blocks * ns.blockSize;
  const slot = Math.ceil(bytes / 4096) * 4096;
  using buf = DmaBuffer.allocate(qd * slot);
  const m = space.map(buf);
  const span = Number(ns.blocks) - blocks;
  const randomLba = (): number => Math.floor((Math.random() * span) / blocks) * blocks;
  let issued = 0;
  const started = process.hrtime.bigint();
  if (api === 'promise') {
    await Promise.all(
      Array.from({ length: qd }, async (_, i) => {
        while (issued < count) {
          issued++;
          await ns.read(randomLba(), blocks, { mapping: m, offset: i * slot });
        }
      }),
    );
  } else {
    await new Promise<void>((resolve, reject) => {
      let completed = 0;
      // one callback for every read; the lane number is its tag
      const done = (err: Error | undefined, lane: number): void => {
        if (err) {
          issued = count;
          reject(err);
          return;
        }
        if (issued < count) {
          issued++;
          ns.readInto(randomLba(), blocks, m, lane * slot, done, lane);
        }
        if (++completed === count) resolve();
      };
      for (let lane = 0; lane < qd && issued < count; lane++) {
        issued++;
        ns.readInto(randomLba(), blocks, m, lane * slot, done, lane);
      }
    });
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  m.unmap();
  return count / seconds;
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  using space = AddressSpace.open({ backend: (a.flags.get('backend') ?? 'auto') as BackendChoice });
  const nsid = a.flags.has('nsid') ? intArg(a.flags.get('nsid'), '--nsid') : 1;
  if (a.command === 'bench') {
    const qd = a.flags.has('qd') ? intArg(a.flags.get('qd'), '--qd') : 32;
    const count = a.flags.has('count') ? intArg(a.flags.get('count'), '--count') : 2000;
    const blocks = a.flags.has('blocks') ? intArg(a.flags.get('blocks'), '--blocks') : undefined;
    const rounds = a.flags.has('rounds') ? intArg(a.flags.get('rounds'), '--rounds') : 1;
    const wanted = a.flags.get('mode') ?? 'polled';
    const api = (a.flags.get('api') ?? 'callback') as Api;
    if (api !== 'callback' && api !== 'promise') throw new UsageError(`--api must be callback or promise, not ${api}`);
    const modes: NvmeCompletionMode[] = wanted === 'both' ? ['polled', 'interrupt'] : [wanted as NvmeCompletionMode];
    const results = new Map<string, number[]>(modes.map((m) => [m, []]));
    for (let r = 0; r < rounds; r++) {
      for (const mode of modes) {
        const nvme = await open(space, a, mode);
        try {
          const ns = nvme.namespace(nsid);
          const n = blocks ?? Math.max(1, 4096 / ns.blockSize);
          await bench(space, ns, qd, Math.min(1000, count), n, api); // warm-up: the JIT's fresh code is new code for an emulating guest too
          const before = { ...nvme.queues[0].stats };
          const iops = await bench(space, ns, qd, count, n, api);
          results.get(mode)!.push(iops);
          const s = nvme.queues[0].stats;
          const completed = s.completed - before.completed;
          console.log(
            `round ${r + 1} ${mode}: ${count} random reads of ${n * ns.blockSize} B at QD${qd} (${space.kind}, ${api}s): ${Math.round(iops)} IOPS; ` +
              `${(completed / (s.reaps - before.reaps)).toFixed(1)} completions per reap, ` +
              `${((s.doorbellWrites - before.doorbellWrites) / completed).toFixed(2)} doorbell writes per read` +
              `${nvme.shadowDoorbells ? ' (shadow doorbells)' : ''}`,
          );
        } finally {
          await nvme.close();
        }
      }
    }
    for (const [mode, list] of results) {
      const sorted = [...list].sort((x, y) => x - y);
      console.log(`${mode}: median ${Math.round(sorted[Math.floor(sorted.length / 2)])} IOPS over ${list.length} round(s)`);
    }
    return;
  }
  await using nvme = await open(space, a);
  const ns = nvme.namespace(nsid);
  switch (a.command) {
    case 'identify':
      identify(nvme);
      break;
    case 'read':
      await read(space, ns, BigInt(intArg(a.positional[0], 'LBA')), intArg(a.positional[1] ?? '1', 'COUNT'), a.flags.get('out'));
      break;
    case 'write':
      if (!a.positional[1]) throw new UsageError(USAGE);
      await write(space, ns, BigInt(intArg(a.positional[0], 'LBA')), a.positional[1]);
      break;
    case 'flush':
      await ns.flush();
      console.log(`namespace ${ns.nsid} flushed`);
      break;
    default:
      throw new UsageError(`unknown command '${a.command}'\n${USAGE}`);
  }
}

main().catch((err) => {
  // usage mistakes and the driver's own errors (they carry a code) say enough in their message
  const code = (err as { code?: unknown }).code;
  if (err instanceof UsageError) console.error(err.message);
  else if (err instanceof Error && typeof code === 'string') console.error(`nvme-tool: ${err.message} [${code}]`);
  else console.error(err);
  process.exitCode = 1;
});
