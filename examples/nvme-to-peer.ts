/**
 * Peer-to-peer storage: a file's worth of blocks copied from the disk into
 * another device's memory and back, with no bounce through CPU memory. The
 * NVMe controller reads the blocks straight into the peer's BAR (ivshmem's
 * BAR2 in the test guest) and writes them from there to another place on
 * the disk; the CPU only writes the commands.
 *
 *   npx node-vfio vm run -- node dist/examples/nvme-to-peer.js FILE
 *   npx node-vfio vm run -- node dist/examples/nvme-to-peer.js FILE --from LBA --to LBA --backend type1
 *
 * 1. FILE goes onto the disk at LBA --from, written from CPU memory (the usual way).
 * 2. disk -> peer: NVMe Read of those blocks into the peer's BAR, scattered
 *    over 64 KiB fragments taken from the BAR's end backwards (the last 64
 *    KiB first), linked into one contiguous IOVA range (a P2P phys_list).
 * 3. peer -> disk: NVMe Write of the same blocks from the BAR to LBA --to.
 * 4. Both disk ranges are read back into CPU memory and checked against FILE,
 *    and so are the BAR's fragments, through its mmap.
 *
 * FILE may be up to the BAR's size (1 MiB in the guest). LBAs are in the
 * namespace's logical blocks; by default --from is the middle of the
 * namespace and --to the first 1 MiB boundary after the copy. Other options:
 * --nvme BDF (0000:00:05.0), --peer BDF (0000:00:04.0), --bar N (2),
 * --backend auto|iommufd|type1.
 */
import * as fs from 'node:fs';
import { AddressSpace, BackendChoice, DmaBuffer, NvmeController, NvmeNamespace, P2PProvider, PhysList } from '../lib';

const FRAGMENT = 64 * 1024;
const USAGE = 'usage: nvme-to-peer FILE [--from LBA] [--to LBA] [--nvme BDF] [--peer BDF] [--bar N] [--backend auto|iommufd|type1]';

function parse(argv: string[]): { file: string; flags: Map<string, string> } {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) flags.set(argv[i].slice(2), argv[++i] ?? '');
    else positional.push(argv[i]);
  }
  if (positional.length !== 1) throw new Error(USAGE);
  return { file: positional[0], flags };
}

function intFlag(flags: Map<string, string>, name: string, fallback: number): number {
  const v = flags.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, not ${v}\n${USAGE}`);
  return n;
}

/** `blocks` from `lba` in commands of at most the namespace's largest transfer. */
async function inChunks(ns: NvmeNamespace, blocks: number, io: (first: number, count: number) => Promise<unknown>): Promise<void> {
  for (let done = 0; done < blocks; done += ns.maxTransferBlocks) await io(done, Math.min(ns.maxTransferBlocks, blocks - done));
}

async function main(): Promise<void> {
  const { file, flags } = parse(process.argv.slice(2));
  const data = fs.readFileSync(file);
  using space = AddressSpace.open({ backend: (flags.get('backend') ?? 'auto') as BackendChoice });
  using peer = space.openDevice(flags.get('peer') ?? '0000:00:04.0');
  using provider = new P2PProvider(peer, intFlag(flags, 'bar', 2));
  await using nvme = await NvmeController.open(space, flags.get('nvme') ?? '0000:00:05.0');
  const ns = nvme.namespace(1);
  const bs = ns.blockSize;
  const blocks = Math.ceil(data.length / bs);
  const bytes = blocks * bs;
  if (bytes > Number(provider.size)) throw new Error(`${file} needs ${bytes} bytes of the BAR, which has ${provider.size}`);
  const perMiB = (1 << 20) / bs;
  const from = intFlag(flags, 'from', Number(ns.blocks / 2n));
  const to = intFlag(flags, 'to', Math.ceil((from + blocks) / perMiB) * perMiB);
  console.log(
    `${nvme.identity.model}: ${bs}-byte blocks; peer ${peer.bdf} BAR${provider.regionIndex}, ${provider.size} bytes (${space.backend.kind})`,
  );

  // 1. The file onto the disk, from CPU memory.
  using cpu = DmaBuffer.allocate(Math.ceil(bytes / 4096) * 4096);
  cpu.bytes.set(data);
  const cpuMapping = space.map(cpu);
  await inChunks(ns, blocks, (i, n) => ns.write(from + i, n, { mapping: cpuMapping, offset: i * bs }));
  console.log(`wrote ${file} (${data.length} bytes, ${blocks} blocks) at LBA ${from} from CPU memory`);

  // 2. disk -> peer: fragments of the BAR from its end backwards, one contiguous IOVA range.
  const fragments = [];
  for (let left = Math.ceil(bytes / 4096) * 4096, k = 1; left > 0; left -= FRAGMENT, k++) {
    fragments.push({ offset: Number(provider.size) - k * FRAGMENT, length: Math.min(FRAGMENT, left) });
  }
  const p2p = space.mapPhysList(PhysList.p2p(provider, fragments));
  await inChunks(ns, blocks, (i, n) => ns.read(from + i, n, { mapping: p2p, offset: i * bs }));
  const where = fragments.map((f) => `0x${f.offset.toString(16)}`).join(', ');
  console.log(`disk -> peer: ${blocks} blocks from LBA ${from} into BAR offsets ${where} (IOVA 0x${p2p.iova.toString(16)}), peer to peer`);

  // 3. peer -> disk.
  await inChunks(ns, blocks, (i, n) => ns.write(to + i, n, { mapping: p2p, offset: i * bs }));
  await ns.flush();
  console.log(`peer -> disk: ${blocks} blocks to LBA ${to}, peer to peer`);

  // 4. Check: the BAR through its mmap, both disk ranges through CPU memory.
  const bar = new Uint8Array(peer.bar(provider.regionIndex).buffer);
  let at = 0;
  for (const f of fragments) {
    const n = Math.min(f.length, data.length - at);
    if (n > 0 && !Buffer.from(bar.buffer, bar.byteOffset + f.offset, n).equals(data.subarray(at, at + n)))
      throw new Error(`the BAR at 0x${f.offset.toString(16)} does not hold ${file}`);
    at += f.length;
  }
  for (const lba of [from, to]) {
    cpu.bytes.fill(0);
    await inChunks(ns, blocks, (i, n) => ns.read(lba + i, n, { mapping: cpuMapping, offset: i * bs }));
    if (!Buffer.from(cpu.buffer, 0, data.length).equals(data)) throw new Error(`LBA ${lba} does not hold ${file}`);
  }
  console.log(`the BAR and LBAs ${from} and ${to} hold ${file} byte for byte`);
  p2p.unmap();
  cpuMapping.unmap();
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exitCode = 1;
});
