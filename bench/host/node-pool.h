// An allocator for the fake kernel's bookkeeping (the std::map nodes of its
// IOVA areas) that takes memory from blocks it maps itself, never from the
// process's malloc heap. The real kernel's bookkeeping does not live in the
// calling process's heap either: with malloc, the faked ioctls of a Node
// process (a large, busy heap) cost more than the same calls from the small
// C program, and that difference would be counted as the library's overhead.
//
// Freed elements go on a free list and are reused first. Every call runs
// under the fake kernel's lock, so the pool needs none of its own.
#ifndef FAKE_KERNEL_NODE_POOL_H
#define FAKE_KERNEL_NODE_POOL_H

#include <sys/mman.h>

#include <cstddef>
#include <new>

namespace fake {

// Fixed-size elements of `kSize` bytes carved from 1 MiB anonymous mappings; one pool per size.
template <std::size_t kSize>
class SizePool {
 public:
  static void* Get() {
    Pool& p = Instance();
    if (p.free != nullptr) {
      Free* f = p.free;
      p.free = f->next;
      return f;
    }
    if (p.left == 0) {
      void* block = ::mmap(nullptr, kBlock, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (block == MAP_FAILED) throw std::bad_alloc();
      p.next = static_cast<char*>(block);
      p.left = kBlock / kStride;
    }
    void* out = p.next;
    p.next += kStride;
    p.left--;
    return out;
  }

  static void Put(void* element) {
    Pool& p = Instance();
    auto* f = static_cast<Free*>(element);
    f->next = p.free;
    p.free = f;
  }

 private:
  struct Free {
    Free* next;
  };
  static constexpr std::size_t kBlock = std::size_t{1} << 20;
  static constexpr std::size_t kAlign = alignof(std::max_align_t);
  // An element holds at least the free list's link, rounded up to the alignment.
  static constexpr std::size_t kUnit = kSize < sizeof(Free) ? sizeof(Free) : kSize;
  static constexpr std::size_t kStride = (kUnit + kAlign - 1) / kAlign * kAlign;
  struct Pool {
    Free* free = nullptr;
    char* next = nullptr;
    std::size_t left = 0;
  };
  static Pool& Instance() {
    static Pool pool;
    return pool;
  }
};

// A standard allocator over SizePool for single elements (what node-based containers ask for);
// arrays of more than one go to operator new.
template <typename T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() = default;
  template <typename U>
  PoolAllocator(const PoolAllocator<U>&) {}  // NOLINT: implicit, as the allocator requirements ask

  T* allocate(std::size_t n) {
    if (n == 1) return static_cast<T*>(SizePool<sizeof(T)>::Get());
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) {
    if (n == 1)
      SizePool<sizeof(T)>::Put(p);
    else
      ::operator delete(p);
  }
  template <typename U>
  bool operator==(const PoolAllocator<U>&) const {
    return true;
  }
  template <typename U>
  bool operator!=(const PoolAllocator<U>&) const {
    return false;
  }
};

}  // namespace fake

#endif
