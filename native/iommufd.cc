#include "iommufd.h"

#include <fcntl.h>

#include <vector>

#include "file.h"
#include "uapi/iommufd.h"

namespace nvfio {

namespace u = uapi;

Napi::Function Iommufd::Init(Napi::Env env) {
  return DefineClass(env, kClassName,
                     {
                         InstanceMethod<&Iommufd::IoasAlloc>("ioasAlloc"),
                         InstanceMethod<&Iommufd::Destroy>("destroy"),
                         InstanceMethod<&Iommufd::IovaRanges>("iovaRanges"),
                         InstanceMethod<&Iommufd::AllowIovas>("allowIovas"),
                         InstanceMethod<&Iommufd::Map>("map"),
                         InstanceMethod<&Iommufd::MapList>("mapList"),
                         InstanceMethod<&Iommufd::Copy>("copy"),
                         InstanceMethod<&Iommufd::Unmap>("unmap"),
                         InstanceMethod<&Iommufd::Option>("option"),
                         InstanceMethod<&Iommufd::PinCount>("pinCount"),
                         InstanceMethod<&Iommufd::FastPath>("fastPath"),
                         InstanceAccessor<&Iommufd::FdGetter>("fd"),
                         InstanceMethod<&Iommufd::Close>("close"),
                     });
}

// new Iommufd(path = '/dev/iommu')
Iommufd::Iommufd(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Iommufd>(info) {
  std::string path =
      info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "/dev/iommu";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.Valid()) ThrowErrno(info.Env(), errno, "open", path);
  core_ = std::make_shared<DmaCore>(DmaCore::Kind::kIommufd, std::move(fd));
}

// The fd closes (destroying every IOAS once no device is bound) when the last
// holder of the core lets go: this object, or a hot-path function still alive.
Iommufd::~Iommufd() = default;

int Iommufd::Fd(Napi::Env env) const { return core_->Fd(env, kClassName); }

Napi::Value Iommufd::FdGetter(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), core_->RawFd());
}

// fastPath(ioas) -> the hot-path functions of one IOAS (see fast_path.cc).
Napi::Value Iommufd::FastPath(const Napi::CallbackInfo& info) {
  Fd(info.Env());
  return NewFastPath(info.Env(), core_, ToU32(info[0], "ioas"));
}

Napi::Value Iommufd::IoasAlloc(const Napi::CallbackInfo& info) {
  u::iommu_ioas_alloc cmd{};
  cmd.size = sizeof(cmd);
  if (Ioctl(Fd(info.Env()), u::IOMMU_IOAS_ALLOC, &cmd) < 0)
    ThrowErrno(info.Env(), errno, "ioctl(IOMMU_IOAS_ALLOC)");
  return Napi::Number::New(info.Env(), cmd.out_ioas_id);
}

// destroy(id): any iommufd object; for an IOAS also drops its pins.
Napi::Value Iommufd::Destroy(const Napi::CallbackInfo& info) {
  uint32_t id = ToU32(info[0], "id");
  u::iommu_destroy cmd{};
  cmd.size = sizeof(cmd);
  cmd.id = id;
  if (Ioctl(Fd(info.Env()), u::IOMMU_DESTROY, &cmd) < 0)
    ThrowErrno(info.Env(), errno, "ioctl(IOMMU_DESTROY)");
  core_->pins.RemoveSpace(id);
  return info.Env().Undefined();
}

namespace {

Napi::Array RangesToJs(Napi::Env env, const u::iommu_iova_range* r, size_t n) {
  Napi::Array out = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("start", FromU64(env, r[i].start));
    o.Set("last", FromU64(env, r[i].last));
    out.Set(i, o);
  }
  return out;
}

std::vector<u::iommu_iova_range> RangesFromJs(Napi::Env env, const Napi::Value& v) {
  if (!v.IsArray()) ThrowType(env, "ranges must be an array of { start, last }");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<u::iommu_iova_range> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (!e.IsObject()) ThrowType(env, "ranges must be an array of { start, last }");
    out[i].start = ToU64(e.As<Napi::Object>().Get("start"), "start");
    out[i].last = ToU64(e.As<Napi::Object>().Get("last"), "last");
  }
  return out;
}

}  // namespace

// iovaRanges(ioas) -> { ranges: [{ start, last }], alignment }: grows the
// array while the kernel answers EMSGSIZE (it sets num_iovas to what it needs).
Napi::Value Iommufd::IovaRanges(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t ioas = ToU32(info[0], "ioas");
  // Start small: the kernel says how many it has (EMSGSIZE), and the array grows.
  std::vector<u::iommu_iova_range> ranges(1);
  u::iommu_ioas_iova_ranges cmd{};
  for (;;) {
    cmd = {};
    cmd.size = sizeof(cmd);
    cmd.ioas_id = ioas;
    cmd.num_iovas = static_cast<uint32_t>(ranges.size());
    cmd.allowed_iovas = reinterpret_cast<uintptr_t>(ranges.data());
    if (Ioctl(Fd(env), u::IOMMU_IOAS_IOVA_RANGES, &cmd) == 0) break;
    if (errno != EMSGSIZE || cmd.num_iovas <= ranges.size())
      ThrowErrno(env, errno, "ioctl(IOMMU_IOAS_IOVA_RANGES)");
    ranges.resize(cmd.num_iovas);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("ranges", RangesToJs(env, ranges.data(), cmd.num_iovas));
  out.Set("alignment", FromU64(env, cmd.out_iova_alignment));
  return out;
}

// allowIovas(ioas, ranges): the IOVAs the kernel may pick from when it chooses.
Napi::Value Iommufd::AllowIovas(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t ioas = ToU32(info[0], "ioas");
  std::vector<u::iommu_iova_range> ranges = RangesFromJs(env, info[1]);
  u::iommu_ioas_allow_iovas cmd{};
  cmd.size = sizeof(cmd);
  cmd.ioas_id = ioas;
  cmd.num_iovas = static_cast<uint32_t>(ranges.size());
  cmd.allowed_iovas = reinterpret_cast<uintptr_t>(ranges.data());
  if (Ioctl(Fd(env), u::IOMMU_IOAS_ALLOW_IOVAS, &cmd) < 0)
    ThrowErrno(env, errno, "ioctl(IOMMU_IOAS_ALLOW_IOVAS)");
  return env.Undefined();
}

uint64_t Iommufd::MapOne(Napi::Env env, uint32_t ioas, const Fragment& f, uint64_t iova, bool fixed,
                         uint32_t flags) {
  flags = (flags & ~u::IOMMU_IOAS_MAP_FIXED_IOVA) | (fixed ? uint32_t{u::IOMMU_IOAS_MAP_FIXED_IOVA} : 0u);
  if (f.file_fd >= 0) {
    u::iommu_ioas_map_file cmd{};
    cmd.size = sizeof(cmd);
    cmd.flags = flags;
    cmd.ioas_id = ioas;
    cmd.fd = f.file_fd;
    cmd.start = f.offset;
    cmd.length = f.length;
    cmd.iova = iova;
    if (Ioctl(Fd(env), u::IOMMU_IOAS_MAP_FILE, &cmd) < 0)
      ThrowErrno(env, errno, "ioctl(IOMMU_IOAS_MAP_FILE)");
    return cmd.iova;
  }
  u::iommu_ioas_map cmd{};
  cmd.size = sizeof(cmd);
  cmd.flags = flags;
  cmd.ioas_id = ioas;
  cmd.user_va = reinterpret_cast<uintptr_t>(f.memory->Addr() + f.offset);
  cmd.length = f.length;
  cmd.iova = iova;
  if (Ioctl(Fd(env), u::IOMMU_IOAS_MAP, &cmd) < 0) ThrowErrno(env, errno, "ioctl(IOMMU_IOAS_MAP)");
  return cmd.iova;
}

void Iommufd::UnmapQuiet(uint32_t ioas, uint64_t iova, uint64_t length) {
  uint64_t done;
  core_->Unmap(ioas, iova, length, &done);
}

// map(ioas, source, offset, length, iova | null, flags, asFile) -> iova: one mapping, at a
// fixed IOVA or (null) where the kernel chooses; unmapped by range (unmap()).
// With asFile a memfd-backed NativeMemory goes through IOMMU_IOAS_MAP_FILE.
Napi::Value Iommufd::Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t ioas = ToU32(info[0], "ioas");
  Fragment f =
      ReadFragment(env, info[1], ToU64(info[2], "offset"), ToU64(info[3], "length"), info[6].ToBoolean());
  bool fixed = !info[4].IsNull() && !info[4].IsUndefined();
  uint64_t iova = MapOne(env, ioas, f, fixed ? ToU64(info[4], "iova") : 0, fixed, ToU32(info[5], "flags"));
  core_->pins.Add(ioas, iova, f.length, f.memory);
  return FromU64(env, iova);
}

// mapList(ioas, iova, fragments, flags) -> pin id: the whole list in one
// call, at consecutive IOVAs; on failure nothing stays mapped.
Napi::Value Iommufd::MapList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t ioas = ToU32(info[0], "ioas");
  uint64_t iova = ToU64(info[1], "iova");
  uint64_t total = 0;
  std::vector<Fragment> frags = ReadFragmentList(env, info[2], iova, &total);
  uint32_t flags = ToU32(info[3], "flags");
  MapConsecutive(
      frags, iova, [&](const Fragment& f, uint64_t at) { MapOne(env, ioas, f, at, true, flags); },
      [&](uint64_t at, uint64_t len) { UnmapQuiet(ioas, at, len); });
  return Napi::Number::New(env, PinList(core_->pins, ioas, iova, total, frags));
}

// copy(dstIoas, srcIoas, srcIova, length, dstIova, flags) -> pin id of the copy.
Napi::Value Iommufd::Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  u::iommu_ioas_copy cmd{};
  cmd.size = sizeof(cmd);
  cmd.dst_ioas_id = ToU32(info[0], "dstIoas");
  cmd.src_ioas_id = ToU32(info[1], "srcIoas");
  cmd.src_iova = ToU64(info[2], "srcIova");
  cmd.length = ToU64(info[3], "length");
  cmd.dst_iova = ToU64(info[4], "dstIova");
  cmd.flags = ToU32(info[5], "flags") | u::IOMMU_IOAS_MAP_FIXED_IOVA;
  if (Ioctl(Fd(env), u::IOMMU_IOAS_COPY, &cmd) < 0) ThrowErrno(env, errno, "ioctl(IOMMU_IOAS_COPY)");
  // The copy shares the source's pages: it keeps the same memory alive.
  std::vector<MappingRef> held = core_->pins.Overlapping(cmd.src_ioas_id, cmd.src_iova, cmd.length);
  MappingRef first = held.empty() ? nullptr : held.front();
  if (!held.empty()) held.erase(held.begin());
  return Napi::Number::New(
      env, core_->pins.Add(cmd.dst_ioas_id, cmd.dst_iova, cmd.length, std::move(first), std::move(held)));
}

// unmap(ioas, iova, length) -> bytes unmapped. The range must cover whole mappings.
Napi::Value Iommufd::Unmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  u::iommu_ioas_unmap cmd{};
  cmd.size = sizeof(cmd);
  cmd.ioas_id = ToU32(info[0], "ioas");
  cmd.iova = ToU64(info[1], "iova");
  cmd.length = ToU64(info[2], "length");
  const uint64_t length = cmd.length;
  if (Ioctl(Fd(env), u::IOMMU_IOAS_UNMAP, &cmd) < 0) ThrowErrno(env, errno, "ioctl(IOMMU_IOAS_UNMAP)");
  core_->pins.RemoveRange(cmd.ioas_id, cmd.iova, length);
  return FromU64(env, cmd.length);
}

// option(optionId, op, objectId, value) -> value (IOMMU_OPTION: GET returns it).
Napi::Value Iommufd::Option(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  u::iommu_option cmd{};
  cmd.size = sizeof(cmd);
  cmd.option_id = ToU32(info[0], "option");
  cmd.op = static_cast<uint16_t>(ToU32(info[1], "op"));
  cmd.object_id = ToU32(info[2], "objectId");
  cmd.val64 = ToU64(info[3], "value");
  if (Ioctl(Fd(env), u::IOMMU_OPTION, &cmd) < 0) ThrowErrno(env, errno, "ioctl(IOMMU_OPTION)");
  return FromU64(env, cmd.val64);
}

// How many IOVA ranges this object keeps memory alive for (for tests).
Napi::Value Iommufd::PinCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(core_->pins.Size()));
}

Napi::Value Iommufd::Close(const Napi::CallbackInfo& info) {
  core_->Close();
  return info.Env().Undefined();
}

}  // namespace nvfio
