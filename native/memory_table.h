// Numbers for memory: each live NativeMemory of an environment has a handle,
// a small integer the hot paths take instead of the object, so mapping a
// buffer costs no object unwrap. A handle is checked on every use: an index
// into this table and the slot's generation, so a stale handle (its memory
// closed or collected) or a made-up one finds nothing rather than other memory.
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
    return (s.generation << kIndexBits) | index;
  }

  void Remove(uint64_t handle) {
    Slot* s = Find(handle);
    if (s == nullptr) return;
    s->mapping.reset();
    s->generation = (s->generation + 1) & ((uint64_t{1} << (53 - kIndexBits)) - 1);
    free_.push_back(static_cast<uint32_t>(handle & kIndexMask));
  }

  // The memory of a live handle, or null.
  const MappingRef* Get(uint64_t handle) {
    Slot* s = Find(handle);
    return s == nullptr ? nullptr : &s->mapping;
  }

 private:
  struct Slot {
    MappingRef mapping;
    uint64_t generation = 0;
  };
  Slot* Find(uint64_t handle) {
    uint64_t index = handle & kIndexMask;
    if (index >= slots_.size()) return nullptr;
    Slot& s = slots_[index];
    return s.mapping && s.generation == (handle >> kIndexBits) ? &s : nullptr;
  }

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
};

}  // namespace nvfio

#endif
