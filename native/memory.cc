#include "memory.h"

#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <cstring>

namespace nvfio {

Mapping::~Mapping() {
  if (addr_ != nullptr) ::munmap(addr_, length_);
}

namespace {

constexpr size_t kPage = 4096;

// Allocates `length` bytes of `kind`, populated, and kept out of fork()ed
// children: a copy-on-write break after fork would leave the device
// DMA-ing into pages the parent no longer sees.
MappingRef AllocateMapping(Napi::Env env, size_t length, MemoryKind kind, size_t huge_page) {
  UniqueFd fd;
  void* addr = MAP_FAILED;
  switch (kind) {
    case MemoryKind::kAnonymous:
      addr =
          ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
      if (addr == MAP_FAILED) ThrowErrno(env, errno, "mmap", "(anonymous DMA buffer)");
      break;
    case MemoryKind::kHugetlb: {
      int shift = __builtin_ctzll(huge_page);
      addr =
          ::mmap(nullptr, length, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_HUGETLB | (shift << MAP_HUGE_SHIFT), -1, 0);
      if (addr == MAP_FAILED) ThrowErrno(env, errno, "mmap", "(MAP_HUGETLB DMA buffer)");
      break;
    }
    case MemoryKind::kMemfd: {
      fd.Reset(::memfd_create("node-vfio-dma", MFD_CLOEXEC));
      if (!fd.Valid()) ThrowErrno(env, errno, "memfd_create");
      if (::ftruncate(fd.Get(), static_cast<off_t>(length)) < 0)
        ThrowErrno(env, errno, "ftruncate", "(memfd)");
      addr = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd.Get(), 0);
      if (addr == MAP_FAILED) ThrowErrno(env, errno, "mmap", "(memfd DMA buffer)");
      break;
    }
    case MemoryKind::kDevice:
      ThrowRange(env, "device memory comes from Device.mmap(), not allocate()");
  }
  auto mapping = std::make_shared<Mapping>(static_cast<uint8_t*>(addr), length, kind, std::move(fd));
  if (::madvise(addr, length, MADV_DONTFORK) < 0) ThrowErrno(env, errno, "madvise", "(MADV_DONTFORK)");
  return mapping;
}

}  // namespace

Napi::Function Memory::Init(Napi::Env env) {
  return DefineClass(env, kClassName,
                     {
                         StaticMethod<&Memory::Allocate>("allocate"),
                         InstanceMethod<&Memory::ArrayBuffer>("arrayBuffer"),
                         InstanceAccessor<&Memory::Length>("length"),
                         InstanceAccessor<&Memory::Address>("address"),
                         InstanceAccessor<&Memory::KindGetter>("kind"),
                         InstanceAccessor<&Memory::FdGetter>("fd"),
                         InstanceAccessor<&Memory::Closed>("closed"),
                         InstanceAccessor<&Memory::HandleGetter>("handle"),
                         InstanceMethod<&Memory::Read<uint8_t>>("read8"),
                         InstanceMethod<&Memory::Read<uint16_t>>("read16"),
                         InstanceMethod<&Memory::Read<uint32_t>>("read32"),
                         InstanceMethod<&Memory::Read<uint64_t>>("read64"),
                         InstanceMethod<&Memory::Write<uint8_t>>("write8"),
                         InstanceMethod<&Memory::Write<uint16_t>>("write16"),
                         InstanceMethod<&Memory::Write<uint32_t>>("write32"),
                         InstanceMethod<&Memory::Write<uint64_t>>("write64"),
                         InstanceMethod<&Memory::Close>("close"),
                     });
}

// new NativeMemory(external MappingRef*) -- only from native code.
Memory::Memory(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Memory>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    ThrowType(info.Env(), "use NativeMemory.allocate() or Device.mmap()");
  mapping_ = *info[0].As<Napi::External<MappingRef>>().Data();
  info.This().As<Napi::Object>().TypeTag(&kTypeTag);
  table_ = Data(info.Env()).memories;
  handle_ = table_->Add(mapping_, mapping_->Addr(), mapping_->Length());
}

Memory::~Memory() {
  // Finalizer: the ArrayBuffer, if still alive, holds its own reference.
  if (mapping_) table_->Close(handle_);
  mapping_.reset();
}

// The handle: a number naming this memory in the hot paths until it is closed or collected.
Napi::Value Memory::HandleGetter(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(handle_));
}

Napi::Object Memory::Wrap(Napi::Env env, MappingRef mapping) {
  return Data(env).memory_ctor.New({Napi::External<MappingRef>::New(env, &mapping)});
}

// NativeMemory.allocate(length, kind, hugePageSize)
Napi::Value Memory::Allocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t length = ToU64(info[0], "length");
  uint32_t kind = ToU32(info[1], "kind");
  uint64_t huge = info.Length() > 2 && !info[2].IsUndefined() ? ToU64(info[2], "hugePageSize") : 2u << 20;
  if (kind > static_cast<uint32_t>(MemoryKind::kMemfd))
    ThrowRange(env, "kind must be 0 (anonymous), 1 (hugetlb) or 2 (memfd)");
  size_t unit = kind == static_cast<uint32_t>(MemoryKind::kHugetlb) ? huge : kPage;
  if (huge == 0 || (huge & (huge - 1)) != 0) ThrowRange(env, "hugePageSize must be a power of two");
  if (length == 0 || length % unit != 0)
    ThrowRange(env, "length must be a non-zero multiple of " + std::to_string(unit));
  return Wrap(env, AllocateMapping(env, length, static_cast<MemoryKind>(kind), huge));
}

const MappingRef& Memory::Get(Napi::Env env) const {
  if (!mapping_) ThrowClosed(env, kClassName);
  return mapping_;
}

void Memory::CheckRange(Napi::Env env, uint64_t offset, uint64_t length) const {
  const MappingRef& m = Get(env);
  if (offset > m->Length() || length > m->Length() - offset) {
    ThrowRange(env, "range [" + std::to_string(offset) + ", +" + std::to_string(length) +
                        ") is outside the " + std::to_string(m->Length()) + "-byte memory");
  }
}

Napi::Value Memory::ArrayBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const MappingRef& m = Get(env);
  if (!array_buffer_.IsEmpty()) return array_buffer_.Value();
  // One ArrayBuffer per mapping, created once: V8 must not see the same
  // backing store twice. Its finalizer holds a reference of its own.
  holder_ = std::make_shared<Holder>(Holder{m});
  auto* hold = new std::shared_ptr<Holder>(holder_);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
      env, m->Addr(), m->Length(), [](Napi::Env, void*, std::shared_ptr<Holder>* h) { delete h; }, hold);
  array_buffer_ = Napi::Reference<Napi::ArrayBuffer>::New(ab, 1);
  return ab;
}

Napi::Value Memory::Length(const Napi::CallbackInfo& info) {
  return mapping_ ? FromU64(info.Env(), mapping_->Length()) : FromU64(info.Env(), 0);
}

Napi::Value Memory::Address(const Napi::CallbackInfo& info) {
  return FromU64(info.Env(), reinterpret_cast<uintptr_t>(Get(info.Env())->Addr()));
}

Napi::Value Memory::KindGetter(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<uint32_t>(Get(info.Env())->Kind()));
}

Napi::Value Memory::FdGetter(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Get(info.Env())->Fd());
}

Napi::Value Memory::Closed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !mapping_);
}

// Register-width accesses: one load or store of exactly sizeof(T) bytes,
// naturally aligned, as device registers need.
template <typename T>
Napi::Value Memory::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t offset = ToU64(info[0], "offset");
  CheckRange(env, offset, sizeof(T));
  if (offset % sizeof(T) != 0) ThrowRange(env, "offset must be aligned to the access width");
  T v = *reinterpret_cast<volatile T*>(mapping_->Addr() + offset);
  if constexpr (sizeof(T) == 8) {
    return FromU64(env, v);
  } else {
    return Napi::Number::New(env, v);
  }
}

template <typename T>
Napi::Value Memory::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t offset = ToU64(info[0], "offset");
  uint64_t value = ToU64(info[1], "value");
  if constexpr (sizeof(T) < 8) {
    if (value >> (8 * sizeof(T)))
      ThrowRange(env, "value does not fit in " + std::to_string(8 * sizeof(T)) + " bits");
  }
  CheckRange(env, offset, sizeof(T));
  if (offset % sizeof(T) != 0) ThrowRange(env, "offset must be aligned to the access width");
  *reinterpret_cast<volatile T*>(mapping_->Addr() + offset) = static_cast<T>(value);
  return env.Undefined();
}

void Memory::Release(Napi::Env env) {
  if (!array_buffer_.IsEmpty()) {
    Napi::ArrayBuffer ab = array_buffer_.Value();
    if (!ab.IsDetached()) {
      ab.Detach();               // JavaScript loses its view here and now,
      holder_->mapping.reset();  // so its reference goes too; IOMMU mappings keep theirs
    }
    array_buffer_.Reset();
    holder_.reset();
  }
  if (mapping_) table_->Close(handle_);
  mapping_.reset();
}

Napi::Value Memory::Close(const Napi::CallbackInfo& info) {
  Release(info.Env());
  return info.Env().Undefined();
}

}  // namespace nvfio
