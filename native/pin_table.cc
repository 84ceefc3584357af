#include "pin_table.h"

namespace nvfio {

uint32_t PinTable::Add(uint32_t space, uint64_t iova, uint64_t length, MappingRef first,
                       std::vector<MappingRef> more) {
  uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    index = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& s = slots_[index];
  s.pin.space = space;
  s.pin.iova = iova;
  s.pin.length = length;
  s.pin.first = std::move(first);
  s.pin.more = std::move(more);
  s.used = true;
  live_++;
  return (s.generation << kIndexBits) | index;
}

uint32_t PinTable::AddPinned(uint32_t space, uint64_t iova, uint64_t length, MemoryTableRef table,
                             uint32_t slot, std::vector<uint32_t> more) {
  uint32_t id = Add(space, iova, length, nullptr);
  Pin& pin = slots_[id & kIndexMask].pin;
  pin.table = std::move(table);
  pin.slot = slot;
  pin.slots = std::move(more);
  return id;
}

void PinTable::Drop(uint32_t index) {
  Slot& s = slots_[index];
  s.pin.first.reset();
  s.pin.more.clear();
  s.pin.more.shrink_to_fit();
  if (s.pin.table) {
    s.pin.table->Unpin(s.pin.slot);
    for (uint32_t slot : s.pin.slots) s.pin.table->Unpin(slot);
    s.pin.slots.clear();
    s.pin.slots.shrink_to_fit();
    s.pin.table.reset();
  }
  s.used = false;
  s.generation = (s.generation + 1) & ((1u << (31 - kIndexBits)) - 1);
  free_.push_back(index);
  live_--;
}

bool PinTable::Remove(uint32_t id) {
  uint32_t index = id & kIndexMask;
  if (index >= slots_.size()) return false;
  const Slot& s = slots_[index];
  if (!s.used || s.generation != (id >> kIndexBits)) return false;
  Drop(index);
  return true;
}

void PinTable::RemoveRange(uint32_t space, uint64_t iova, uint64_t length) {
  const uint64_t last = iova + (length - 1);
  for (uint32_t i = 0; i < slots_.size(); i++) {
    const Slot& s = slots_[i];
    if (s.used && s.pin.space == space && s.pin.iova >= iova && s.pin.iova + (s.pin.length - 1) <= last)
      Drop(i);
  }
}

void PinTable::RemoveSpace(uint32_t space) {
  for (uint32_t i = 0; i < slots_.size(); i++) {
    if (slots_[i].used && slots_[i].pin.space == space) Drop(i);
  }
}

void PinTable::Clear() {
  for (uint32_t i = 0; i < slots_.size(); i++) {
    if (slots_[i].used) Drop(i);
  }
}

std::vector<MappingRef> PinTable::Overlapping(uint32_t space, uint64_t iova, uint64_t length) const {
  std::vector<MappingRef> out;
  const uint64_t last = iova + (length - 1);
  for (const Slot& s : slots_) {
    if (!s.used || s.pin.space != space || s.pin.iova > last || s.pin.iova + (s.pin.length - 1) < iova)
      continue;
    if (s.pin.first) out.push_back(s.pin.first);
    out.insert(out.end(), s.pin.more.begin(), s.pin.more.end());
    if (s.pin.table) out.push_back(s.pin.table->At(s.pin.slot));
    for (uint32_t slot : s.pin.slots) out.push_back(s.pin.table->At(slot));
  }
  return out;
}

}  // namespace nvfio
