// Numbers for memory: each live NativeMemory of an environment has a handle,
// a small integer the hot paths take instead of the object, so mapping a
// buffer costs no object unwrap. A handle is checked on every use (a
// SlotList id), so a stale handle (its memory closed or collected) or a
// made-up one finds nothing rather than other memory.
//
// The table also pins: a slot counts the IOMMU mappings of its memory, and
// holds the memory while that count is not zero, even after the NativeMemory
// closed. Counting here, on the environment's own thread, costs no atomic
// operation per fragment, where a shared_ptr copy per fragment would.
#ifndef NVFIO_MEMORY_TABLE_H
#define NVFIO_MEMORY_TABLE_H

#include <cstdint>
#include <memory>

#include "slot_list.h"

namespace nvfio {

class Mapping;
using MappingRef = std::shared_ptr<Mapping>;

class MemoryTable {
 public:
  // `addr` and `length`: the mapping's, kept beside it (see Addr()).
  uint64_t Add(MappingRef mapping, uint8_t* addr, uint64_t length) {
    Entry* e;
    uint64_t handle = slots_.Take(&e);
    e->addr = addr;
    e->length = length;
    e->mapping = std::move(mapping);
    e->open = true;
    return handle;
  }

  // The memory closed: its handle finds nothing from now on; the slot holds
  // the memory until its last pin goes.
  void Close(uint64_t handle) {
    int64_t index = Find(handle);
    if (index < 0) return;
    Entry& e = slots_.At(static_cast<uint32_t>(index));
    e.open = false;
    if (e.pins == 0) slots_.Free(static_cast<uint32_t>(index));
  }

  // The slot index of an open handle, or -1.
  int64_t Find(uint64_t handle) const {
    int64_t index = slots_.Find(handle);
    return index >= 0 && slots_.At(static_cast<uint32_t>(index)).open ? index : -1;
  }

  const MappingRef& At(uint32_t index) const { return slots_.At(index).mapping; }
  // The memory's first byte and length, kept in the slot: a list's fragments read them from the
  // table itself, not each from its own Mapping elsewhere on the heap.
  uint8_t* Addr(uint32_t index) const { return slots_.At(index).addr; }
  uint64_t Length(uint32_t index) const { return slots_.At(index).length; }
  void Pin(uint32_t index) { slots_.At(index).pins++; }
  void Unpin(uint32_t index) {
    Entry& e = slots_.At(index);
    if (--e.pins == 0 && !e.open) slots_.Free(index);
  }

 private:
  struct Entry {
    MappingRef mapping;
    uint8_t* addr = nullptr;
    uint64_t length = 0;
    uint64_t pins = 0;
    bool open = false;
  };
  // Handles below 2^53: a JavaScript number holds them exactly.
  SlotList<Entry, 24, 29> slots_;
};

using MemoryTableRef = std::shared_ptr<MemoryTable>;

}  // namespace nvfio

#endif
