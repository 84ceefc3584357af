import { AddressSpace, DmaBuffer, NvmeController } from 'node-vfio';

async function main(): Promise<void> {
  using space = AddressSpace.open();
  await using nvme = await NvmeController.open(space, '0000:00:05.0', { mode: 'interrupt' });
  const ns = nvme.namespace(1);
  using buf = DmaBuffer.allocate(64 * 1024);
  const m = space.map(buf);
  await ns.read(0n, 128, m); // 128 blocks of 512 bytes from LBA 0, into the mapping
  console.log(`${nvme.identity.model}: read ${128 * ns.blockSize} bytes of ${ns.bytes}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
