// What keeps mapped memory alive: for each IOVA range an address space has
// mapped, a reference to the memory behind it. Kept by each native address
// space (iommufd IOAS, type1 container) next to the kernel's own mappings.
#ifndef NVFIO_PIN_TABLE_H
#define NVFIO_PIN_TABLE_H

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "memory.h"

namespace nvfio {

class PinTable {
 public:
  struct Pin {
    uint64_t length;
    MappingRef memory;  // null for mappings whose backing the kernel holds (a dma-buf)
  };
  using Key = std::pair<uint32_t, uint64_t>;  // (IOAS id or 0, IOVA)

  void Add(uint32_t space, uint64_t iova, uint64_t length, MappingRef memory);
  // Drops the pins lying wholly inside [iova, iova + length): what the kernel just unmapped.
  void Remove(uint32_t space, uint64_t iova, uint64_t length);
  void RemoveSpace(uint32_t space);
  void Clear() { pins_.clear(); }
  // The pins overlapping [iova, iova + length), for IOMMU_IOAS_COPY.
  std::vector<std::pair<uint64_t, Pin>> Overlapping(uint32_t space, uint64_t iova, uint64_t length) const;
  size_t Size() const { return pins_.size(); }

 private:
  std::map<Key, Pin> pins_;
};

}  // namespace nvfio

#endif
