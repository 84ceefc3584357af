#include "pin_table.h"

namespace nvfio {

void PinTable::Add(uint32_t space, uint64_t iova, uint64_t length, MappingRef memory) {
  pins_[{space, iova}] = Pin{length, std::move(memory)};
}

void PinTable::Remove(uint32_t space, uint64_t iova, uint64_t length) {
  const uint64_t last = iova + (length - 1);
  for (auto it = pins_.lower_bound({space, iova}); it != pins_.end() && it->first.first == space;) {
    uint64_t pin_last = it->first.second + (it->second.length - 1);
    if (it->first.second > last) break;
    it = pin_last <= last ? pins_.erase(it) : std::next(it);
  }
}

void PinTable::RemoveSpace(uint32_t space) {
  pins_.erase(pins_.lower_bound({space, 0}), pins_.upper_bound({space, UINT64_MAX}));
}

std::vector<std::pair<uint64_t, PinTable::Pin>> PinTable::Overlapping(uint32_t space, uint64_t iova,
                                                                      uint64_t length) const {
  std::vector<std::pair<uint64_t, Pin>> out;
  const uint64_t last = iova + (length - 1);
  auto it = pins_.upper_bound({space, iova});
  if (it != pins_.begin() && std::prev(it)->first.first == space) --it;
  for (; it != pins_.end() && it->first.first == space && it->first.second <= last; ++it) {
    uint64_t pin_last = it->first.second + (it->second.length - 1);
    if (pin_last >= iova) out.emplace_back(it->first.second, it->second);
  }
  return out;
}

}  // namespace nvfio
