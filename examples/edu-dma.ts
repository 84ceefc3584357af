/**
 * The first example: move bytes RAM -> device -> RAM with QEMU's edu device.
 *   npx node-vfio vm run -- node dist/examples/edu-dma.js [--backend iommufd|type1]
 */
import { AddressSpace, DmaBuffer, EduDevice } from '../lib';

async function main(): Promise<void> {
  const flag = process.argv.indexOf('--backend');
  const backend = flag > 0 ? (process.argv[flag + 1] as 'iommufd' | 'type1') : 'auto';
  using space = AddressSpace.open({ backend });
  using edu = EduDevice.open(space, '0000:00:03.0');
  using buf = DmaBuffer.allocate(8192);
  const m = space.map(buf, { limit: 1n << 28n }); // edu reaches 28 bits of IOVA

  const text = new TextEncoder().encode(`hello from ${space.kind}`);
  buf.bytes.set(text);
  await edu.dmaToDevice(m.iova, 0, text.length); // RAM -> device
  await edu.dmaFromDevice(0, m.iova + 4096n, text.length); // device -> RAM
  console.log(
    `edu ${edu.version.major}.${edu.version.minor} at IOVA 0x${m.iova.toString(16)}:`,
    new TextDecoder().decode(buf.bytes.subarray(4096, 4096 + text.length)),
  );
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
