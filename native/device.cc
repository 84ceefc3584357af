#include "device.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <vector>

#include "async_ioctl.h"
#include "file.h"
#include "info_caps.h"
#include "iommufd.h"
#include "memory.h"
#include "uapi/vfio.h"

namespace nvfio {

namespace u = uapi;

Napi::Function Device::Init(Napi::Env env) {
  return DefineClass(env, kClassName,
                     {
                         InstanceMethod<&Device::BindIommufd>("bindIommufd"),
                         InstanceMethod<&Device::AttachPt>("attachPt"),
                         InstanceMethod<&Device::DetachPt>("detachPt"),
                         InstanceMethod<&Device::Info>("info"),
                         InstanceMethod<&Device::RegionInfo>("regionInfo"),
                         InstanceMethod<&Device::IrqInfo>("irqInfo"),
                         InstanceMethod<&Device::SetIrqs>("setIrqs"),
                         InstanceMethod<&Device::Reset>("reset"),
                         InstanceMethod<&Device::ResetAsync>("resetAsync"),
                         InstanceMethod<&Device::Pread>("pread"),
                         InstanceMethod<&Device::Pwrite>("pwrite"),
                         InstanceMethod<&Device::Mmap>("mmap"),
                         InstanceMethod<&Device::DmaBuf>("dmaBuf"),
                         InstanceMethod<&Device::Feature>("feature"),
                         InstanceAccessor<&Device::FdGetter>("fd"),
                         InstanceMethod<&Device::Close>("close"),
                     });
}

// new Device(cdevPath), e.g. new Device('/dev/vfio/devices/vfio0'); or, from
// native code, new Device(external int*, parent).
Device::Device(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Device>(info) {
  Napi::Env env = info.Env();
  if (info[0].IsExternal()) {
    fd_.Reset(*info[0].As<Napi::External<int>>().Data());
    parent_ = Napi::Persistent(info[1].As<Napi::Object>());
    return;
  }
  if (!info[0].IsString()) ThrowType(env, "path must be a string (/dev/vfio/devices/vfioN)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  fd_.Reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd_.Valid()) ThrowErrno(env, errno, "open", path);
}

Napi::Object Device::Wrap(Napi::Env env, UniqueFd fd, Napi::Object parent) {
  int raw = fd.Get();
  Napi::Object obj = Data(env).device_ctor.New({Napi::External<int>::New(env, &raw), parent});
  fd.Release();
  return obj;
}

int Device::Fd(Napi::Env env) const {
  if (!fd_.Valid()) ThrowClosed(env, kClassName);
  return fd_.Get();
}

Napi::Value Device::FdGetter(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fd_.Get());
}

// bindIommufd(iommufd) -> devid
Napi::Value Device::BindIommufd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Iommufd* ictx = UnwrapAs<Iommufd>(info[0], Data(env).iommufd_ctor, "iommufd");
  u::vfio_device_bind_iommufd cmd{};
  cmd.argsz = sizeof(cmd);
  cmd.iommufd = ictx->Fd(env);
  if (Ioctl(Fd(env), u::VFIO_DEVICE_BIND_IOMMUFD, &cmd) < 0)
    ThrowErrno(env, errno, "ioctl(VFIO_DEVICE_BIND_IOMMUFD)");
  parent_ = Napi::Persistent(info[0].As<Napi::Object>());
  return Napi::Number::New(env, cmd.out_devid);
}

// attachPt(ioasOrHwptId) -> the HWPT id the device is now attached to
Napi::Value Device::AttachPt(const Napi::CallbackInfo& info) {
  u::vfio_device_attach_iommufd_pt cmd{};
  cmd.argsz = sizeof(cmd);
  cmd.pt_id = ToU32(info[0], "ptId");
  if (Ioctl(Fd(info.Env()), u::VFIO_DEVICE_ATTACH_IOMMUFD_PT, &cmd) < 0) {
    ThrowErrno(info.Env(), errno, "ioctl(VFIO_DEVICE_ATTACH_IOMMUFD_PT)");
  }
  return Napi::Number::New(info.Env(), cmd.pt_id);
}

Napi::Value Device::DetachPt(const Napi::CallbackInfo& info) {
  u::vfio_device_detach_iommufd_pt cmd{};
  cmd.argsz = sizeof(cmd);
  if (Ioctl(Fd(info.Env()), u::VFIO_DEVICE_DETACH_IOMMUFD_PT, &cmd) < 0) {
    ThrowErrno(info.Env(), errno, "ioctl(VFIO_DEVICE_DETACH_IOMMUFD_PT)");
  }
  return info.Env().Undefined();
}

// info() -> { flags, numRegions, numIrqs }
Napi::Value Device::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  u::vfio_device_info di{};
  di.argsz = sizeof(di);
  if (Ioctl(Fd(env), u::VFIO_DEVICE_GET_INFO, &di) < 0) ThrowErrno(env, errno, "ioctl(VFIO_DEVICE_GET_INFO)");
  Napi::Object out = Napi::Object::New(env);
  out.Set("flags", Napi::Number::New(env, di.flags));
  out.Set("numRegions", Napi::Number::New(env, di.num_regions));
  out.Set("numIrqs", Napi::Number::New(env, di.num_irqs));
  return out;
}

// regionInfo(index) -> { index, flags, size, offset, sparseAreas?, type?, msixMappable? }
Napi::Value Device::RegionInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t index = ToU32(info[0], "index");
  auto buf = InfoIoctl<u::vfio_region_info>(env, Fd(env), u::VFIO_DEVICE_GET_REGION_INFO,
                                            "ioctl(VFIO_DEVICE_GET_REGION_INFO)",
                                            [&](u::vfio_region_info& r) { r.index = index; });
  const auto* r = reinterpret_cast<const u::vfio_region_info*>(buf.data());
  Napi::Object out = Napi::Object::New(env);
  out.Set("index", Napi::Number::New(env, r->index));
  out.Set("flags", Napi::Number::New(env, r->flags));
  out.Set("size", FromU64(env, r->size));
  out.Set("offset", FromU64(env, r->offset));
  if (r->flags & u::VFIO_REGION_INFO_FLAG_CAPS) {
    ForEachCap(buf, r->cap_offset, [&](const u::vfio_info_cap_header& cap, size_t room) {
      if (cap.id == u::VFIO_REGION_INFO_CAP_SPARSE_MMAP &&
          room >= sizeof(u::vfio_region_info_cap_sparse_mmap)) {
        const auto& s = reinterpret_cast<const u::vfio_region_info_cap_sparse_mmap&>(cap);
        uint32_t n =
            std::min<uint32_t>(s.nr_areas, (room - s.areas_offset) / sizeof(u::vfio_region_sparse_mmap_area));
        Napi::Array areas = Napi::Array::New(env, n);
        for (uint32_t i = 0; i < n; i++) {
          Napi::Object a = Napi::Object::New(env);
          a.Set("offset", FromU64(env, s.areas()[i].offset));
          a.Set("size", FromU64(env, s.areas()[i].size));
          areas.Set(i, a);
        }
        out.Set("sparseAreas", areas);
      } else if (cap.id == u::VFIO_REGION_INFO_CAP_TYPE && room >= sizeof(u::vfio_region_info_cap_type)) {
        const auto& t = reinterpret_cast<const u::vfio_region_info_cap_type&>(cap);
        Napi::Object o = Napi::Object::New(env);
        o.Set("type", Napi::Number::New(env, t.type));
        o.Set("subtype", Napi::Number::New(env, t.subtype));
        out.Set("type", o);
      } else if (cap.id == u::VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) {
        out.Set("msixMappable", true);
      }
    });
  }
  return out;
}

// irqInfo(index) -> { index, flags, count }
Napi::Value Device::IrqInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  u::vfio_irq_info ii{};
  ii.argsz = sizeof(ii);
  ii.index = ToU32(info[0], "index");
  if (Ioctl(Fd(env), u::VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0)
    ThrowErrno(env, errno, "ioctl(VFIO_DEVICE_GET_IRQ_INFO)");
  Napi::Object out = Napi::Object::New(env);
  out.Set("index", Napi::Number::New(env, ii.index));
  out.Set("flags", Napi::Number::New(env, ii.flags));
  out.Set("count", Napi::Number::New(env, ii.count));
  return out;
}

// setIrqs(flags, index, start, count, data?) where data is an array of
// NativeFile (eventfds; null for -1, to tear one vector down) with
// DATA_EVENTFD, or of booleans with DATA_BOOL. Returns the ioctl's result:
// enabling MSI/MSI-X returns how many vectors there are when fewer than asked.
Napi::Value Device::SetIrqs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t flags = ToU32(info[0], "flags");
  uint32_t index = ToU32(info[1], "index");
  uint32_t start = ToU32(info[2], "start");
  uint32_t count = ToU32(info[3], "count");
  std::vector<uint8_t> payload;
  if (flags & (u::VFIO_IRQ_SET_DATA_EVENTFD | u::VFIO_IRQ_SET_DATA_BOOL)) {
    if (!info[4].IsArray() || info[4].As<Napi::Array>().Length() != count) {
      ThrowType(env, "data must be an array of `count` entries");
    }
    Napi::Array data = info[4].As<Napi::Array>();
    bool fds = flags & u::VFIO_IRQ_SET_DATA_EVENTFD;
    payload.resize(count * (fds ? sizeof(int32_t) : 1));
    for (uint32_t i = 0; i < count; i++) {
      Napi::Value v = data.Get(i);
      if (fds) {
        int32_t fd = v.IsNull() ? -1 : UnwrapAs<File>(v, Data(env).file_ctor, "eventfd")->Fd(env);
        std::memcpy(payload.data() + i * sizeof(int32_t), &fd, sizeof(fd));
      } else {
        payload[i] = v.ToBoolean() ? 1 : 0;
      }
    }
  }
  std::vector<uint8_t> buf(sizeof(u::vfio_irq_set) + payload.size());
  auto* set = reinterpret_cast<u::vfio_irq_set*>(buf.data());
  set->argsz = static_cast<uint32_t>(buf.size());
  set->flags = flags;
  set->index = index;
  set->start = start;
  set->count = count;
  if (!payload.empty()) std::memcpy(set->data(), payload.data(), payload.size());
  int r = Ioctl(Fd(env), u::VFIO_DEVICE_SET_IRQS, buf.data());
  if (r < 0) ThrowErrno(env, errno, "ioctl(VFIO_DEVICE_SET_IRQS)");
  return Napi::Number::New(env, r);
}

Napi::Value Device::Reset(const Napi::CallbackInfo& info) {
  if (Ioctl(Fd(info.Env()), u::VFIO_DEVICE_RESET, nullptr) < 0)
    ThrowErrno(info.Env(), errno, "ioctl(VFIO_DEVICE_RESET)");
  return info.Env().Undefined();
}

// resetAsync() -> Promise<void>: VFIO_DEVICE_RESET on a thread of the pool.
Napi::Value Device::ResetAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return RunIoctlAsync(env, info.This().As<Napi::Object>(), Fd(env), u::VFIO_DEVICE_RESET, {},
                       [](Napi::Env e, int err) -> Napi::Value {
                         if (err != 0) ThrowErrno(e, err, "ioctl(VFIO_DEVICE_RESET)");
                         return e.Undefined();
                       });
}

namespace {

// One pread or pwrite of a whole typed array at a device fd offset (a
// region's offset from regionInfo plus the offset inside the region).
template <bool kWrite>
Napi::Value RegionIo(const Napi::CallbackInfo& info, int fd) {
  Napi::Env env = info.Env();
  uint64_t offset = ToU64(info[0], "offset");
  if (!info[1].IsTypedArray())
    ThrowType(env, kWrite ? "source must be a Uint8Array" : "target must be a Uint8Array");
  Napi::TypedArray bytes = info[1].As<Napi::TypedArray>();
  uint8_t* data = static_cast<uint8_t*>(bytes.ArrayBuffer().Data()) + bytes.ByteOffset();
  ssize_t n;
  do {
    n = kWrite ? ::pwrite(fd, data, bytes.ByteLength(), static_cast<off_t>(offset))
               : ::pread(fd, data, bytes.ByteLength(), static_cast<off_t>(offset));
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, errno, kWrite ? "pwrite" : "pread", "(device region)");
  return Napi::Number::New(env, static_cast<double>(n));
}

}  // namespace

// pread(fileOffset, target) -> bytes read
Napi::Value Device::Pread(const Napi::CallbackInfo& info) { return RegionIo<false>(info, Fd(info.Env())); }

// pwrite(fileOffset, source) -> bytes written
Napi::Value Device::Pwrite(const Napi::CallbackInfo& info) { return RegionIo<true>(info, Fd(info.Env())); }

// mmap(fileOffset, length, writable) -> NativeMemory over the region (a BAR).
Napi::Value Device::Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t offset = ToU64(info[0], "offset");
  uint64_t length = ToU64(info[1], "length");
  bool writable = info[2].ToBoolean();
  if (length == 0) ThrowRange(env, "length must not be 0");
  void* addr = ::mmap(nullptr, length, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, Fd(env),
                      static_cast<off_t>(offset));
  if (addr == MAP_FAILED) ThrowErrno(env, errno, "mmap", "(device region)");
  auto mapping =
      std::make_shared<Mapping>(static_cast<uint8_t*>(addr), length, MemoryKind::kDevice, UniqueFd());
  return Memory::Wrap(env, std::move(mapping));
}

// dmaBuf(regionIndex, ranges: [{ offset, length }]) -> NativeFile (a dma-buf
// exported with VFIO_DEVICE_FEATURE_DMA_BUF)
Napi::Value Device::DmaBuf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t region = ToU32(info[0], "regionIndex");
  if (!info[1].IsArray() || info[1].As<Napi::Array>().Length() == 0)
    ThrowType(env, "ranges must be a non-empty array");
  Napi::Array ranges = info[1].As<Napi::Array>();
  const uint32_t n = ranges.Length();
  const size_t feat = sizeof(u::vfio_device_feature);
  std::vector<uint64_t> storage(
      (feat + sizeof(u::vfio_device_feature_dma_buf) + n * sizeof(u::vfio_region_dma_range) + 7) / 8);
  auto* base = reinterpret_cast<uint8_t*>(storage.data());
  auto* hdr = reinterpret_cast<u::vfio_device_feature*>(base);
  auto* db = reinterpret_cast<u::vfio_device_feature_dma_buf*>(base + feat);
  hdr->argsz = static_cast<uint32_t>(storage.size() * 8);
  hdr->flags = u::VFIO_DEVICE_FEATURE_GET | u::VFIO_DEVICE_FEATURE_DMA_BUF;
  db->region_index = region;
  db->open_flags = O_RDWR | O_CLOEXEC;
  db->nr_ranges = n;
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value r = ranges.Get(i);
    if (!r.IsObject()) ThrowType(env, "ranges must be an array of { offset, length }");
    db->dma_ranges()[i].offset = ToU64(r.As<Napi::Object>().Get("offset"), "offset");
    db->dma_ranges()[i].length = ToU64(r.As<Napi::Object>().Get("length"), "length");
  }
  UniqueFd fd(Ioctl(Fd(env), u::VFIO_DEVICE_FEATURE, base));
  if (!fd.Valid()) ThrowErrno(env, errno, "ioctl(VFIO_DEVICE_FEATURE)", "(DMA_BUF)");
  return File::Wrap(env, std::move(fd), "dma-buf");
}

// feature(flags, data?: Uint8Array) -> ioctl result: VFIO_DEVICE_FEATURE with
// a caller-built payload (PROBE, BUS_MASTER, ...). GET results land in data.
Napi::Value Device::Feature(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t flags = ToU32(info[0], "flags");
  Napi::Uint8Array data =
      info.Length() > 1 && info[1].IsTypedArray() ? info[1].As<Napi::Uint8Array>() : Napi::Uint8Array();
  size_t len = data.IsEmpty() ? 0 : data.ByteLength();
  std::vector<uint64_t> storage((sizeof(u::vfio_device_feature) + len + 7) / 8);
  auto* hdr = reinterpret_cast<u::vfio_device_feature*>(storage.data());
  hdr->argsz = static_cast<uint32_t>(sizeof(u::vfio_device_feature) + len);
  hdr->flags = flags;
  if (len) std::memcpy(hdr->data(), data.Data(), len);
  int r = Ioctl(Fd(env), u::VFIO_DEVICE_FEATURE, storage.data());
  if (r < 0) ThrowErrno(env, errno, "ioctl(VFIO_DEVICE_FEATURE)");
  if (len) std::memcpy(data.Data(), hdr->data(), len);
  return Napi::Number::New(env, r);
}

Napi::Value Device::Close(const Napi::CallbackInfo& info) {
  fd_.Reset();
  parent_.Reset();
  return info.Env().Undefined();
}

}  // namespace nvfio
