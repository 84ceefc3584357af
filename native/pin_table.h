// What keeps mapped memory alive: for each mapping an address space made
// (one buffer, or a whole linked list), a record of its IOVA range and of
// the memory behind it. Records live in slots found by id, so adding and
// dropping one is O(1) with no allocation for a single buffer; the rare
// range queries (an unmap that covers several mappings, IOMMU_IOAS_COPY,
// destroying an IOAS) scan the slots. Kept by each native address space
// (iommufd IOAS, type1 container) next to the kernel's own mappings.
#ifndef NVFIO_PIN_TABLE_H
#define NVFIO_PIN_TABLE_H

#include <cstdint>
#include <utility>
#include <vector>

#include "memory.h"
#include "memory_table.h"
#include "slot_list.h"

namespace nvfio {

class PinTable {
 public:
  struct Pin {
    uint32_t space = 0;  // IOAS id, or 0 under type1
    uint64_t iova = 0;
    uint64_t length = 0;
    MappingRef first;              // null for mappings whose backing the kernel holds (a dma-buf)
    std::vector<MappingRef> more;  // the rest of a list's memory
    bool in_table = false;         // the hot paths pin in the environment's memory table instead:
    uint32_t slot = 0;             // this slot of it (when `in_table`),
    std::vector<uint32_t> slots;   // and these, each pinned once

    // Lets go of the memory references, touching only what is set (a map's pin has none).
    void Reset() {
      if (first) first.reset();
      if (!more.empty()) std::vector<MappingRef>().swap(more);
      if (!slots.empty()) std::vector<uint32_t>().swap(slots);
      in_table = false;
    }
  };

  ~PinTable() { Clear(); }

  // The memory table AddPinned() records pin in (it must outlive this table).
  void SetTable(MemoryTable* table) { table_ = table; }

  // Records a mapping of [iova, iova + length) in `space`; returns its id (below 2^31).
  uint32_t Add(uint32_t space, uint64_t iova, uint64_t length, MappingRef first,
               std::vector<MappingRef> more = {});
  // The same for the hot paths: the memory is pinned in the memory table's `slot` and `more` (already
  // Pin()ned).
  uint32_t AddPinned(uint32_t space, uint64_t iova, uint64_t length, uint32_t slot,
                     std::vector<uint32_t> more = {});
  // Drops the record `id`; false when there is none (already dropped, or never made).
  bool Remove(uint32_t id);
  // Drops the records lying wholly inside [iova, iova + length): what the kernel just unmapped.
  void RemoveRange(uint32_t space, uint64_t iova, uint64_t length);
  void RemoveSpace(uint32_t space);
  void Clear();
  // The memory of the records overlapping [iova, iova + length), for IOMMU_IOAS_COPY.
  std::vector<MappingRef> Overlapping(uint32_t space, uint64_t iova, uint64_t length) const;
  size_t Size() const { return live_; }

 private:
  // A fresh record for a mapping of [iova, iova + length) in `space`, counted live; its id in *id.
  Pin* Take(uint32_t space, uint64_t iova, uint64_t length, uint32_t* id);
  // Unpins and frees slot `index`.
  void Drop(uint32_t index);
  template <typename Pred>
  void DropIf(Pred pred) {
    for (uint32_t i = 0; i < pins_.Size(); i++) {
      if (pins_.Used(i) && pred(pins_.At(i))) Drop(i);
    }
  }

  SlotList<Pin, 20, 11> pins_;
  MemoryTable* table_ = nullptr;
  size_t live_ = 0;
};

}  // namespace nvfio

#endif
