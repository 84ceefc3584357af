import { AddressSpace, DmaPool, EduDevice, PhysList } from 'node-vfio';

async function main(): Promise<void> {
  using space = AddressSpace.open();
  using edu = EduDevice.open(space, '0000:00:03.0');
  // ONE pinned allocation (here 2 MiB huge pages), carved into page-aligned pieces.
  using pool = DmaPool.create(4 << 20, { kind: 'hugetlb' });
  const pieces = Array.from({ length: 1024 }, () => pool.allocate(4096));

  // Pieces allocated in order are contiguous: 1,024 fragments link with ONE map ioctl.
  using window = space.reserve(4 << 20, { limit: 1n << 28n });
  const linked = window.link(PhysList.cpu(pieces));
  console.log(`${pieces.length} pieces, ${linked.length} bytes at IOVA 0x${linked.iova.toString(16)}`);
  linked.unmap();

  // Or map the whole pool once: every piece has an IOVA, no system call per piece.
  const whole = pool.map(space, { limit: 1n << 28n });
  pieces[7].bytes.set(new TextEncoder().encode('hello, pool'));
  await edu.dmaToDevice(pieces[7].iova(), 0, 11);
  await edu.dmaFromDevice(0, pieces[8].iova(), 11);
  console.log(new TextDecoder().decode(pieces[8].bytes.subarray(0, 11)));
  whole.unmap();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
