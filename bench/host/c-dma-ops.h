// The C side's DMA operations, shared by the C loop (c-loop.cc, its own
// process) and the same-process C side (c-same-process.cc, an addon the
// library's side loads): the calls the library makes for map4k,
// map4k.live1000 and link1024, made directly, through the fake kernel.
//
// Structs and ioctl numbers come from the project's own native/uapi headers.
#ifndef FAKE_KERNEL_C_DMA_OPS_H
#define FAKE_KERNEL_C_DMA_OPS_H

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../native/uapi/iommufd.h"

namespace cside {

namespace u = nvfio::uapi;

constexpr uint64_t kPage = 4096;
constexpr int kLiveMappings = 1000;  // plan.ts LIVE_MAPPINGS
constexpr int kFragments = 1024;     // plan.ts LINK_FRAGMENTS

// A system call's result, or an exception naming the call and errno's text.
// (The fake kernel never fails with EINTR: no retry loop, unlike the addon.)
// The timed loops pass a literal: nothing is built unless the call failed.
[[noreturn]] inline void Fail(const std::string& call) {
  throw std::runtime_error(call + ": " + std::strerror(errno));
}
inline int Must(int r, const char* call) {
  if (r < 0) Fail(call);
  return r;
}
inline int Must(int r, const std::string& call) {
  if (r < 0) Fail(call);
  return r;
}

// CPU time of the process, every thread: what process.cpuUsage() (getrusage) counts, in ns.
inline uint64_t CpuNs() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

// DMA memory as DmaBuffer.allocate() makes it: populated, out of fork()ed children.
inline uint8_t* Allocate(uint64_t length) {
  void* p =
      ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  Must(p == MAP_FAILED ? -1 : 0, "mmap (DMA buffer)");
  Must(::madvise(p, length, MADV_DONTFORK), "madvise");
  return static_cast<uint8_t*>(p);
}

// An IOAS of an iommufd, mapped as the library maps.
struct Ioas {
  int iommufd = -1;
  uint32_t id = 0;

  // At a fixed IOVA, readable and writable.
  void Map(const uint8_t* va, uint64_t length, uint64_t iova) const {
    const uint32_t flags =
        u::IOMMU_IOAS_MAP_FIXED_IOVA | u::IOMMU_IOAS_MAP_READABLE | u::IOMMU_IOAS_MAP_WRITEABLE;
    u::iommu_ioas_map cmd{sizeof(cmd), flags, id, 0, reinterpret_cast<uintptr_t>(va), length, iova};
    Must(::ioctl(iommufd, u::IOMMU_IOAS_MAP, &cmd), "IOMMU_IOAS_MAP");
  }

  void Unmap(uint64_t iova, uint64_t length) const {
    u::iommu_ioas_unmap cmd{sizeof(cmd), id, iova, length};
    Must(::ioctl(iommufd, u::IOMMU_IOAS_UNMAP, &cmd), "IOMMU_IOAS_UNMAP");
  }
};

// A new IOAS on a new iommufd, as AddressSpace.open({ backend: 'iommufd' }) makes one.
inline Ioas OpenIoas() {
  Ioas a;
  a.iommufd = Must(::open("/dev/iommu", O_RDWR | O_CLOEXEC), "open /dev/iommu");
  u::iommu_ioas_alloc alloc{};
  alloc.size = sizeof(alloc);
  Must(::ioctl(a.iommufd, u::IOMMU_IOAS_ALLOC, &alloc), "IOMMU_IOAS_ALLOC");
  a.id = alloc.out_ioas_id;
  return a;
}

// The memory the DMA metrics use, and where each goes: one buffer (map4k at
// kPage, where the library's allocator puts it; map4k.live1000 past the live
// ones), 1,000 others to keep mapped, 1,024 pieces for link1024 (at kPage).
struct DmaWork {
  uint8_t* buffer = Allocate(kPage);
  std::vector<uint8_t*> others;
  std::vector<uint8_t*> pieces;

  static constexpr uint64_t kMapAt = kPage;
  static constexpr uint64_t kAfterLive = kPage * (1 + kLiveMappings);
  static constexpr uint64_t kWindow = kPage;

  DmaWork() {
    for (int i = 0; i < kLiveMappings; i++) others.push_back(Allocate(kPage));
    for (int i = 0; i < kFragments; i++) pieces.push_back(Allocate(kPage));
  }
  ~DmaWork() {
    ::munmap(buffer, kPage);
    for (uint8_t* b : others) ::munmap(b, kPage);
    for (uint8_t* b : pieces) ::munmap(b, kPage);
  }
  DmaWork(const DmaWork&) = delete;
  DmaWork& operator=(const DmaWork&) = delete;

  // `n` map + unmap pairs of the buffer at `iova`.
  void MapPairs(const Ioas& a, uint64_t iova, uint64_t n) const {
    for (uint64_t i = 0; i < n; i++) {
      a.Map(buffer, kPage, iova);
      a.Unmap(iova, kPage);
    }
  }

  // The 1,000 other mappings, in place below kAfterLive (or gone again).
  void SetLive(const Ioas& a, bool live) const {
    for (int i = 0; i < kLiveMappings; i++) {
      if (live)
        a.Map(others[i], kPage, kPage * (1 + i));
      else
        a.Unmap(kPage * (1 + i), kPage);
    }
  }

  // `n` links of the 1,024 pieces at consecutive IOVAs (a map each), each undone by one unmap.
  void Links(const Ioas& a, uint64_t n) const {
    for (uint64_t l = 0; l < n; l++) {
      for (int i = 0; i < kFragments; i++) a.Map(pieces[i], kPage, kWindow + kPage * i);
      a.Unmap(kWindow, kPage * kFragments);
    }
  }
};

}  // namespace cside

#endif
