// The part of an address space the hot paths need: its file descriptor (an
// iommufd, or a type1 container), the map and unmap ioctls of its kind, and
// the pin table that keeps mapped memory alive. Shared (shared_ptr) by the
// JavaScript object that owns it (Iommufd, Container) and by the bound
// hot-path functions of FastPath, so neither can outlive it; close() closes
// the fd at once whoever still holds it.
#ifndef NVFIO_DMA_CORE_H
#define NVFIO_DMA_CORE_H

#include <cstdint>
#include <memory>
#include <vector>

#include "common.h"
#include "pin_table.h"

namespace nvfio {

// Device access of a mapping, as the library passes it (not a uAPI value).
constexpr uint32_t kAccessRead = 1;
constexpr uint32_t kAccessWrite = 2;

class DmaCore {
 private:
  // First, so that it outlives `pins` (which unpins into it when destroyed).
  MemoryTableRef table_;

 public:
  enum class Kind { kIommufd, kType1 };
  DmaCore(Kind kind, UniqueFd fd) : kind_(kind), fd_(std::move(fd)) {}

  bool Closed() const { return !fd_.Valid(); }
  // The fd, or a thrown ERR_VFIO_CLOSED naming `what`.
  int Fd(Napi::Env env, const char* what) const {
    if (!fd_.Valid()) ThrowClosed(env, what);
    return fd_.Get();
  }
  int RawFd() const { return fd_.Get(); }
  void Close() {
    fd_.Reset();
    pins.Clear();
  }

  // Maps [va, va + length) at the fixed `iova` with kAccess* bits: 0, or -1 with errno set.
  int MapUser(uint32_t ioas, uintptr_t va, uint64_t length, uint64_t iova, uint32_t access) const;
  // The same map as an ioctl request and its argument, to run elsewhere (RunIoctlAsync).
  unsigned long MapRequest(uint32_t ioas, uintptr_t va, uint64_t length, uint64_t iova, uint32_t access,
                           std::vector<uint8_t>* arg) const;
  // Unmaps [iova, iova + length): 0 with *done set to the bytes unmapped, or -1 with errno set.
  int Unmap(uint32_t ioas, uint64_t iova, uint64_t length, uint64_t* done) const;
  const char* MapCall() const {
    return kind_ == Kind::kIommufd ? "ioctl(IOMMU_IOAS_MAP)" : "ioctl(VFIO_IOMMU_MAP_DMA)";
  }
  const char* UnmapCall() const {
    return kind_ == Kind::kIommufd ? "ioctl(IOMMU_IOAS_UNMAP)" : "ioctl(VFIO_IOMMU_UNMAP_DMA)";
  }

  // The memory table of the environment this address space lives in (the
  // hot paths' pins count in it: PinTable::AddPinned), set by the first
  // fast path; null when `table` is another environment's.
  MemoryTable* Table(const MemoryTableRef& table) {
    if (!table_) {
      table_ = table;
      pins.SetTable(table_.get());
    }
    return table_ == table ? table_.get() : nullptr;
  }

  PinTable pins;

 private:
  Kind kind_;
  UniqueFd fd_;
};

using DmaCoreRef = std::shared_ptr<DmaCore>;

// fastPath(core, ioas) -> { args: Float64Array, mapUser(), link(fragments), unmap() }: functions
// bound to one address space, taking their numbers from `args` (see fast_path.cc).
Napi::Object NewFastPath(Napi::Env env, DmaCoreRef core, uint32_t ioas);

}  // namespace nvfio

#endif
