#include "container.h"

#include <fcntl.h>

#include "info_caps.h"
#include "uapi/vfio.h"

namespace nvfio {

namespace u = uapi;

Napi::Function Container::Init(Napi::Env env) {
  return DefineClass(env, kClassName,
                     {
                         InstanceMethod<&Container::ApiVersion>("apiVersion"),
                         InstanceMethod<&Container::CheckExtension>("checkExtension"),
                         InstanceMethod<&Container::SetIommu>("setIommu"),
                         InstanceMethod<&Container::IommuInfo>("iommuInfo"),
                         InstanceMethod<&Container::MapDma>("mapDma"),
                         InstanceMethod<&Container::MapList>("mapList"),
                         InstanceMethod<&Container::UnmapDma>("unmapDma"),
                         InstanceMethod<&Container::PinCount>("pinCount"),
                         InstanceMethod<&Container::FastPath>("fastPath"),
                         InstanceAccessor<&Container::FdGetter>("fd"),
                         InstanceMethod<&Container::Close>("close"),
                     });
}

// new Container(path = '/dev/vfio/vfio')
Container::Container(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Container>(info) {
  std::string path =
      info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "/dev/vfio/vfio";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.Valid()) ThrowErrno(info.Env(), errno, "open", path);
  core_ = std::make_shared<DmaCore>(DmaCore::Kind::kType1, std::move(fd));
}

// The fd closes when the last holder of the core lets go: this object, or a hot-path function.
Container::~Container() = default;

int Container::Fd(Napi::Env env) const { return core_->Fd(env, kClassName); }

Napi::Value Container::FdGetter(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), core_->RawFd());
}

// fastPath() -> the hot-path functions of this container (see fast_path.cc).
Napi::Value Container::FastPath(const Napi::CallbackInfo& info) {
  Fd(info.Env());
  return NewFastPath(info.Env(), core_, 0);
}

Napi::Value Container::ApiVersion(const Napi::CallbackInfo& info) {
  int v = Ioctl(Fd(info.Env()), u::VFIO_GET_API_VERSION, nullptr);
  if (v < 0) ThrowErrno(info.Env(), errno, "ioctl(VFIO_GET_API_VERSION)");
  return Napi::Number::New(info.Env(), v);
}

Napi::Value Container::CheckExtension(const Napi::CallbackInfo& info) {
  uint32_t ext = ToU32(info[0], "extension");
  int v = ::ioctl(Fd(info.Env()), u::VFIO_CHECK_EXTENSION, static_cast<unsigned long>(ext));
  if (v < 0) ThrowErrno(info.Env(), errno, "ioctl(VFIO_CHECK_EXTENSION)");
  return Napi::Number::New(info.Env(), v);
}

Napi::Value Container::SetIommu(const Napi::CallbackInfo& info) {
  uint32_t type = ToU32(info[0], "type");
  if (::ioctl(Fd(info.Env()), u::VFIO_SET_IOMMU, static_cast<unsigned long>(type)) < 0) {
    ThrowErrno(info.Env(), errno, "ioctl(VFIO_SET_IOMMU)");
  }
  return info.Env().Undefined();
}

// iommuInfo() -> { flags, iovaPgsizes, ranges?: [{ start, last }], dmaAvail? }
Napi::Value Container::IommuInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto buf = InfoIoctl<u::vfio_iommu_type1_info>(
      env, Fd(env), u::VFIO_IOMMU_GET_INFO, "ioctl(VFIO_IOMMU_GET_INFO)", [](u::vfio_iommu_type1_info&) {});
  const auto* head = reinterpret_cast<const u::vfio_iommu_type1_info*>(buf.data());
  Napi::Object out = Napi::Object::New(env);
  out.Set("flags", Napi::Number::New(env, head->flags));
  out.Set("iovaPgsizes", FromU64(env, head->iova_pgsizes));
  if (head->flags & u::VFIO_IOMMU_INFO_CAPS) {
    ForEachCap(buf, head->cap_offset, [&](const u::vfio_info_cap_header& cap, size_t room) {
      if (cap.id == u::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE &&
          room >= sizeof(u::vfio_iommu_type1_info_cap_iova_range)) {
        const auto& r = reinterpret_cast<const u::vfio_iommu_type1_info_cap_iova_range&>(cap);
        uint32_t n =
            std::min<uint32_t>(r.nr_iovas, (room - r.iova_ranges_offset) / sizeof(u::vfio_iova_range));
        Napi::Array ranges = Napi::Array::New(env, n);
        for (uint32_t i = 0; i < n; i++) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("start", FromU64(env, r.iova_ranges()[i].start));
          o.Set("last", FromU64(env, r.iova_ranges()[i].end));
          ranges.Set(i, o);
        }
        out.Set("ranges", ranges);
      } else if (cap.id == u::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL &&
                 room >= sizeof(u::vfio_iommu_type1_info_dma_avail)) {
        out.Set("dmaAvail", Napi::Number::New(
                                env, reinterpret_cast<const u::vfio_iommu_type1_info_dma_avail&>(cap).avail));
      }
    });
  }
  return out;
}

void Container::MapOne(Napi::Env env, const Fragment& f, uint64_t iova, uint32_t flags) {
  if (!f.memory || (f.file_fd >= 0 && f.memory->Fd() != f.file_fd)) {
    ThrowType(env, "type1 maps process memory only: map a peer BAR through its mmap, not a dma-buf");
  }
  u::vfio_iommu_type1_dma_map cmd{};
  cmd.argsz = sizeof(cmd);
  cmd.flags = flags;
  cmd.vaddr = reinterpret_cast<uintptr_t>(f.memory->Addr() + f.offset);
  cmd.iova = iova;
  cmd.size = f.length;
  if (Ioctl(Fd(env), u::VFIO_IOMMU_MAP_DMA, &cmd) < 0) ThrowErrno(env, errno, "ioctl(VFIO_IOMMU_MAP_DMA)");
}

void Container::UnmapQuiet(uint64_t iova, uint64_t length) {
  uint64_t done;
  core_->Unmap(0, iova, length, &done);
}

// mapDma(source, offset, length, iova, flags): type1 always needs the IOVA; unmapped by range (unmapDma()).
Napi::Value Container::MapDma(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fragment f = ReadFragment(env, info[0], ToU64(info[1], "offset"), ToU64(info[2], "length"), false);
  uint64_t iova = ToU64(info[3], "iova");
  MapOne(env, f, iova, ToU32(info[4], "flags"));
  core_->pins.Add(0, iova, f.length, f.memory);
  return env.Undefined();
}

// mapList(iova, fragments, flags) -> pin id; on failure nothing stays mapped.
Napi::Value Container::MapList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova = ToU64(info[0], "iova");
  uint64_t total = 0;
  std::vector<Fragment> frags = ReadFragmentList(env, info[1], iova, &total);
  uint32_t flags = ToU32(info[2], "flags");
  MapConsecutive(
      frags, iova, [&](const Fragment& f, uint64_t at) { MapOne(env, f, at, flags); },
      [&](uint64_t at, uint64_t len) { UnmapQuiet(at, len); });
  return Napi::Number::New(env, PinList(core_->pins, 0, iova, total, frags));
}

// unmapDma(iova, length, flags) -> bytes unmapped.
Napi::Value Container::UnmapDma(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  u::vfio_iommu_type1_dma_unmap cmd{};
  cmd.argsz = sizeof(cmd);
  cmd.iova = ToU64(info[0], "iova");
  cmd.size = ToU64(info[1], "length");
  cmd.flags = ToU32(info[2], "flags");
  const uint64_t length = cmd.size;
  if (Ioctl(Fd(env), u::VFIO_IOMMU_UNMAP_DMA, &cmd) < 0)
    ThrowErrno(env, errno, "ioctl(VFIO_IOMMU_UNMAP_DMA)");
  if (cmd.flags & u::VFIO_DMA_UNMAP_FLAG_ALL) {
    core_->pins.Clear();
  } else {
    core_->pins.RemoveRange(0, cmd.iova, length);
  }
  return FromU64(env, cmd.size);
}

Napi::Value Container::PinCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(core_->pins.Size()));
}

Napi::Value Container::Close(const Napi::CallbackInfo& info) {
  core_->Close();
  return info.Env().Undefined();
}

}  // namespace nvfio
