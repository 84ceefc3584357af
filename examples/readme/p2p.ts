import { AddressSpace, DmaBuffer, EduDevice, P2PProvider, PhysList } from 'node-vfio';

async function main(): Promise<void> {
  using space = AddressSpace.open();
  using edu = EduDevice.open(space, '0000:00:03.0');
  using peer = space.openDevice('0000:00:04.0'); // ivshmem: BAR2 is memory
  using provider = new P2PProvider(peer, 2); // region 2 = BAR2
  const p2p = space.mapPhysList(
    PhysList.p2p(provider, [
      { offset: 0x20000, length: 4096 },
      { offset: 0x48000, length: 4096 }, // non-adjacent in the BAR, contiguous in IOVA
    ]),
    { limit: 1n << 28n },
  );

  // A device DMA to p2p.iova lands in the peer's BAR: edu copies RAM -> its buffer -> the BAR.
  using buf = DmaBuffer.allocate(4096);
  buf.bytes.set(new TextEncoder().encode('hello, peer'));
  await edu.dmaToDevice(space.map(buf, { limit: 1n << 28n }).iova, 0, 11);
  await edu.dmaFromDevice(0, p2p.iova + 4096n, 11); // the second fragment: BAR2 offset 0x48000
  console.log(new TextDecoder().decode(new Uint8Array(peer.bar(2).buffer, 0x48000, 11)));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
