// What the fake kernel (fake-kernel.cc) and the C loop (c-loop.cc) of the
// host benchmark lane agree on: the paths the shim serves, the layout of the
// one kind of device it fakes, and the values a test can read back from it.
//
// The device is edu-like (QEMU's educational device): vendor 0x1234, device
// 0x11e8, a 1 MiB memory BAR0 whose first register reads 0x010000ed. Its
// regions sit in the device fd at index << 40, as vfio-pci lays them out
// (VFIO_PCI_OFFSET_SHIFT); the device fd is a sparse memfd, so mmap, pread
// and pwrite of a region reach real memory without any help from the shim.
#ifndef NVFIO_BENCH_FAKE_DEVICE_H
#define NVFIO_BENCH_FAKE_DEVICE_H

#include <cstdint>

namespace fake {

// Opening this path (through libc) returns a memfd holding the shim's
// counters as JSON; it does not exist without the shim.
constexpr const char* kStatsPath = "/dev/fake-kernel/stats";
// Opening kFirePath/<fd>/<count> arms `count` interrupts on the eventfd a
// device holds for the caller's eventfd <fd>: each of the next `count`
// epoll_wait calls first writes 1 to it.
constexpr const char* kFirePath = "/dev/fake-kernel/fire";
// Set to 1: every faked ioctl also makes one real, cheap system call
// (FIONREAD on the fd it was made on), so the cost of entering the kernel counts.
constexpr const char* kSyscallEnv = "FAKE_KERNEL_SYSCALL";

constexpr unsigned kRegionShift = 40;
constexpr uint64_t RegionOffset(uint32_t index) { return uint64_t{index} << kRegionShift; }

constexpr uint64_t kBar0Size = 1u << 20;
constexpr uint64_t kConfigSize = 256;
// The edu device's identification register (BAR0 + 0): 0x010000ed.
constexpr uint32_t kBar0Ident = 0x010000ed;
constexpr uint16_t kVendor = 0x1234;
constexpr uint16_t kDevice = 0x11e8;
constexpr uint32_t kClass = 0x00ff00;

// Vectors per IRQ index (INTx, MSI, MSI-X, ERR, REQ).
constexpr uint32_t kIrqCount[5] = {1, 1, 8, 1, 1};
constexpr uint32_t kMaxVectors = 8;

// The IOVA ranges of every IOAS and container: an x86 IOMMU's 48 bits less
// the MSI window, so the caller's first IOMMU_IOAS_IOVA_RANGES with room for
// one range gets EMSGSIZE, as on real hardware.
struct IovaRange {
  uint64_t start;
  uint64_t last;
};
constexpr IovaRange kIovaRanges[2] = {{0, 0xfedfffffull}, {0xfef00000ull, (1ull << 48) - 1}};

}  // namespace fake

#endif
