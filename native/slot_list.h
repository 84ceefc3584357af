// A list of slots reached by id: an index and the slot's generation, so an
// id of a slot that was freed (and perhaps reused) finds nothing. Freed
// slots are reused through a free list; nothing moves, so indices stay valid.
#ifndef NVFIO_SLOT_LIST_H
#define NVFIO_SLOT_LIST_H

#include <cstdint>
#include <vector>

namespace nvfio {

// T: the slot's content (reset to T{} when freed); ids are (generation << kIndexBits) | index
// and stay below 2^(kIndexBits + kGenerationBits).
template <typename T, int kIndexBits, int kGenerationBits>
class SlotList {
 public:
  static constexpr uint64_t kIndexMask = (uint64_t{1} << kIndexBits) - 1;

  // A free slot, taken: its id, and `*slot` points at its content.
  uint64_t Take(T** slot) {
    uint32_t index;
    if (!free_.empty()) {
      index = free_.back();
      free_.pop_back();
    } else {
      index = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    Slot& s = slots_[index];
    s.used = true;
    *slot = &s.value;
    return (s.generation << kIndexBits) | index;
  }

  // The index of the slot `id` names while it is taken, or -1.
  int64_t Find(uint64_t id) const {
    uint64_t index = id & kIndexMask;
    if (index >= slots_.size()) return -1;
    const Slot& s = slots_[index];
    return s.used && s.generation == (id >> kIndexBits) ? static_cast<int64_t>(index) : -1;
  }

  T& At(uint32_t index) { return slots_[index].value; }
  const T& At(uint32_t index) const { return slots_[index].value; }
  bool Used(uint32_t index) const { return slots_[index].used; }
  uint32_t Size() const { return static_cast<uint32_t>(slots_.size()); }

  // Frees slot `index`: its content reset, its ids stale from now on.
  void Free(uint32_t index) {
    Slot& s = slots_[index];
    ResetValue(s.value, 0);
    s.used = false;
    s.generation = (s.generation + 1) & ((uint64_t{1} << kGenerationBits) - 1);
    free_.push_back(index);
  }

 private:
  // A value with a Reset() member lets go of what it holds that way (cheaper than
  // assigning a new T when most of its members are empty); any other is assigned T{}.
  template <typename U>
  static auto ResetValue(U& v, int) -> decltype(v.Reset(), void()) {
    v.Reset();
  }
  template <typename U>
  static void ResetValue(U& v, long) {
    v = U{};
  }

  struct Slot {
    T value{};
    uint64_t generation = 0;
    bool used = false;
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
};

}  // namespace nvfio

#endif
