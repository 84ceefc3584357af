import { AddressSpace, DmaBuffer, EduDevice } from 'node-vfio';

async function main(): Promise<void> {
  using space = AddressSpace.open(); // iommufd when /dev/iommu exists, else type1
  using edu = EduDevice.open(space, '0000:00:03.0');
  using buf = DmaBuffer.allocate(8192); // page-aligned, zero-copy ArrayBuffer
  const m = space.map(buf, { limit: 1n << 28n }); // edu reaches 28 bits of IOVA

  buf.bytes.set(new TextEncoder().encode('hello, device'));
  await edu.dmaToDevice(m.iova, 0, 13); // RAM -> device
  await edu.dmaFromDevice(0, m.iova + 4096n, 13); // device -> RAM
  console.log(new TextDecoder().decode(buf.bytes.subarray(4096, 4109)));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
