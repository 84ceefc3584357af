// Memory a device may reach: DMA buffers (anonymous, hugetlb, memfd) and
// mmaps of device regions (BARs). A Mapping is shared: the JavaScript
// object, the ArrayBuffer over it, and every IOMMU mapping of it each hold a
// reference, so no JavaScript path (close, GC, detach, transfer) can unmap
// memory that a device can still reach.
#ifndef NVFIO_MEMORY_H
#define NVFIO_MEMORY_H

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common.h"
#include "memory_table.h"

namespace nvfio {

enum class MemoryKind : uint32_t { kAnonymous = 0, kHugetlb = 1, kMemfd = 2, kDevice = 3 };

class Mapping {
 public:
  Mapping(uint8_t* addr, size_t length, MemoryKind kind, UniqueFd fd)
      : addr_(addr), length_(length), kind_(kind), fd_(std::move(fd)) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();

  uint8_t* Addr() const { return addr_; }
  size_t Length() const { return length_; }
  MemoryKind Kind() const { return kind_; }
  // The memfd behind a kMemfd mapping, else -1.
  int Fd() const { return fd_.Get(); }

 private:
  uint8_t* addr_;
  size_t length_;
  MemoryKind kind_;
  UniqueFd fd_;
};

using MappingRef = std::shared_ptr<Mapping>;

// JavaScript class NativeMemory.
class Memory : public Napi::ObjectWrap<Memory> {
 public:
  static constexpr const char* kClassName = "NativeMemory";
  // Tags every NativeMemory object: checking it is how a fragment's source is
  // told apart from a NativeFile without a JavaScript instanceof per fragment.
  static constexpr napi_type_tag kTypeTag = {0x6e7666696f6d656dULL, 0x4e61746976654d65ULL};
  static bool Is(const Napi::Value& v) {
    return v.IsObject() && v.As<Napi::Object>().CheckTypeTag(&kTypeTag);
  }
  static Napi::Function Init(Napi::Env env);
  // A NativeMemory over an existing mapping (used for device mmaps).
  static Napi::Object Wrap(Napi::Env env, MappingRef mapping);

  explicit Memory(const Napi::CallbackInfo& info);
  ~Memory() override;

  // The mapping, or a thrown error if closed.
  const MappingRef& Get(Napi::Env env) const;
  // Checks that [offset, offset + length) lies inside; throws RangeError otherwise.
  void CheckRange(Napi::Env env, uint64_t offset, uint64_t length) const;

 private:
  static Napi::Value Allocate(const Napi::CallbackInfo& info);
  Napi::Value ArrayBuffer(const Napi::CallbackInfo& info);
  Napi::Value Length(const Napi::CallbackInfo& info);
  Napi::Value Address(const Napi::CallbackInfo& info);
  Napi::Value KindGetter(const Napi::CallbackInfo& info);
  Napi::Value FdGetter(const Napi::CallbackInfo& info);
  Napi::Value Closed(const Napi::CallbackInfo& info);
  Napi::Value HandleGetter(const Napi::CallbackInfo& info);
  template <typename T>
  Napi::Value Read(const Napi::CallbackInfo& info);
  template <typename T>
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  void Release(Napi::Env env);

  MappingRef mapping_;
  // This memory's number in its environment's MemoryTable (the hot paths take it).
  std::shared_ptr<MemoryTable> table_;
  uint64_t handle_ = 0;
  // The ArrayBuffer over the mapping and the reference its finalizer holds.
  // When close() detaches the ArrayBuffer itself, that reference is dropped
  // at once (nothing in JavaScript can reach the memory any more); if the
  // ArrayBuffer was detached elsewhere (transferred), its holder keeps it.
  struct Holder {
    MappingRef mapping;
  };
  Napi::Reference<Napi::ArrayBuffer> array_buffer_;
  std::shared_ptr<Holder> holder_;
};

}  // namespace nvfio

#endif
