#include "pin_table.h"

namespace nvfio {

PinTable::Pin* PinTable::Take(uint32_t space, uint64_t iova, uint64_t length, uint32_t* id) {
  Pin* pin;
  *id = static_cast<uint32_t>(pins_.Take(&pin));
  pin->space = space;
  pin->iova = iova;
  pin->length = length;
  live_++;
  return pin;
}

uint32_t PinTable::Add(uint32_t space, uint64_t iova, uint64_t length, MappingRef first,
                       std::vector<MappingRef> more) {
  uint32_t id;
  Pin* pin = Take(space, iova, length, &id);
  pin->first = std::move(first);
  pin->more = std::move(more);
  return id;
}

uint32_t PinTable::AddPinned(uint32_t space, uint64_t iova, uint64_t length, uint32_t slot,
                             std::vector<uint32_t> more) {
  uint32_t id;
  Pin* pin = Take(space, iova, length, &id);
  pin->in_table = true;
  pin->slot = slot;
  if (!more.empty()) pin->slots = std::move(more);
  return id;
}

void PinTable::Drop(uint32_t index) {
  Pin& pin = pins_.At(index);
  if (pin.in_table) {
    table_->Unpin(pin.slot);
    for (uint32_t slot : pin.slots) table_->Unpin(slot);
  }
  pins_.Free(index);  // resets the record: its memory references go
  live_--;
}

bool PinTable::Remove(uint32_t id) {
  int64_t index = pins_.Find(id);
  if (index < 0) return false;
  Drop(static_cast<uint32_t>(index));
  return true;
}

void PinTable::RemoveRange(uint32_t space, uint64_t iova, uint64_t length) {
  const uint64_t last = iova + (length - 1);
  DropIf([&](const Pin& p) { return p.space == space && p.iova >= iova && p.iova + (p.length - 1) <= last; });
}

void PinTable::RemoveSpace(uint32_t space) {
  DropIf([&](const Pin& p) { return p.space == space; });
}

void PinTable::Clear() {
  DropIf([](const Pin&) { return true; });
}

std::vector<MappingRef> PinTable::Overlapping(uint32_t space, uint64_t iova, uint64_t length) const {
  std::vector<MappingRef> out;
  const uint64_t last = iova + (length - 1);
  for (uint32_t i = 0; i < pins_.Size(); i++) {
    if (!pins_.Used(i)) continue;
    const Pin& p = pins_.At(i);
    if (p.space != space || p.iova > last || p.iova + (p.length - 1) < iova) continue;
    if (p.first) out.push_back(p.first);
    out.insert(out.end(), p.more.begin(), p.more.end());
    if (p.in_table) out.push_back(table_->At(p.slot));
    for (uint32_t slot : p.slots) out.push_back(table_->At(slot));
  }
  return out;
}

}  // namespace nvfio
