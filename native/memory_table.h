// Numbers for memory: each live NativeMemory of an environment has a handle,
// a small integer the hot paths take instead of the object, so mapping a
// buffer costs no object unwrap. A handle is checked on every use: an index
// into this table and the slot's generation, so a stale handle (its memory
// closed or collected) or a made-up one finds nothing rather than other memory.
//
// The table also pins: a slot counts the IOMMU mappings of its memory, and
// holds the memory while that count is not zero, even after the NativeMemory
// closed. Counting here, on the environment's own thread, costs no atomic
// operation per fragment, where a shared_ptr copy per fragment would.
#ifndef NVFIO_MEMORY_TABLE_H
#define NVFIO_MEMORY_TABLE_H

#include <cstdint>
#include <memory>
#include <vector>

namespace nvfio {

class Mapping;
using MappingRef = std::shared_ptr<Mapping>;

class MemoryTable {
 public:
  // Handles are (generation << kIndexBits) | index, below 2^53 (a JavaScript number).
  static constexpr int kIndexBits = 24;
  static constexpr uint64_t kIndexMask = (uint64_t{1} << kIndexBits) - 1;

  uint64_t Add(MappingRef mapping) {
    uint32_t index;
    if (!free_.empty()) {
      index = free_.back();
      free_.pop_back();
    } else {
      index = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    Slot& s = slots_[index];
    s.mapping = std::move(mapping);
    s.open = true;
    return (s.generation << kIndexBits) | index;
  }

  // The memory closed: its handle finds nothing from now on; the slot holds
  // the memory until its last pin goes.
  void Close(uint64_t handle) {
    int64_t index = Find(handle);
    if (index < 0) return;
    slots_[index].open = false;
    if (slots_[index].pins == 0) Free(static_cast<uint32_t>(index));
  }

  // The slot index of an open handle, or -1.
  int64_t Find(uint64_t handle) const {
    uint64_t index = handle & kIndexMask;
    if (index >= slots_.size()) return -1;
    const Slot& s = slots_[index];
    return s.open && s.generation == (handle >> kIndexBits) ? static_cast<int64_t>(index) : -1;
  }

  const MappingRef& At(uint32_t index) const { return slots_[index].mapping; }
  void Pin(uint32_t index) { slots_[index].pins++; }
  void Unpin(uint32_t index) {
    Slot& s = slots_[index];
    if (--s.pins == 0 && !s.open) Free(index);
  }

 private:
  struct Slot {
    MappingRef mapping;
    uint64_t generation = 0;
    uint64_t pins = 0;
    bool open = false;
  };
  void Free(uint32_t index) {
    Slot& s = slots_[index];
    s.mapping.reset();
    s.generation = (s.generation + 1) & ((uint64_t{1} << (53 - kIndexBits)) - 1);
    free_.push_back(index);
  }

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
};

using MemoryTableRef = std::shared_ptr<MemoryTable>;

}  // namespace nvfio

#endif
