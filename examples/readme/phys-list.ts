import { AddressSpace, DmaBuffer, PhysList } from 'node-vfio';

using space = AddressSpace.open();
space.openDevice('0000:00:03.0'); // the device that DMAs (type1 maps once one is open); it closes with the space
const a = DmaBuffer.allocate(8192),
  h = DmaBuffer.allocate(2 << 20, { kind: 'hugetlb' });
const m = DmaBuffer.allocate(4096, { kind: 'memfd' });

// Step 1: reserve an IOVA window (nothing mapped yet); 28-bit limit for edu.
using window = space.reserve(64 * 4096, { limit: 1n << 28n });
// Step 2: link a list: every fragment at consecutive IOVAs, in ONE native call.
const list = PhysList.cpu([
  { buffer: a, offset: 0x200 }, // only the first fragment may start inside a page
  { buffer: h, offset: (2 << 20) - 4096 },
  { buffer: m, asFile: true }, // a memfd through IOMMU_IOAS_MAP_FILE (iommufd)
]);
const mapping = window.link(list); // mapping.iova .. + mapping.length, contiguous
console.log(`${mapping.length} bytes at IOVA 0x${mapping.iova.toString(16)}`);
mapping.unmap(); // unlink; window.release() gives the IOVAs back
const both = space.mapPhysList(list); // or both steps at once
console.log(`${both.length} bytes at IOVA 0x${both.iova.toString(16)}`);
