// The hot paths of an address space: map a buffer, link a list, unmap. Each
// is a plain N-API function bound at creation to its address space (its
// DmaCore and IOAS id), so a call unwraps no object; it reads its numbers
// from a Float64Array the same binding owns (`args`), which JavaScript fills
// before the call, so no argument is converted either. Memory is named by
// its MemoryTable handle, checked on every use. Every call still checks its
// numbers, and the pin table holds the memory for as long as it is mapped.
//
//   mapUser()        args = [handle, offset, length, iova, access]; the pin id comes back in
//                    args[5] (no return value: a number made per call costs more than a store)
//   link(fragments)  args = [iova, access, count]; fragments: Float64Array of
//                    (handle, offset, length) triples -> pin id. Fragments
//                    contiguous in virtual memory are mapped by one ioctl per
//                    run; if one fails, what was mapped is unmapped first.
//   unmap()          args = [pin id, iova, length]
//   mapUserAsync(handle, offset, length, iova, access) -> Promise<pin id>: mapUser off the
//                    event loop (pinning a large buffer takes long); arguments as numbers,
//                    since other calls may fill `args` meanwhile. The memory is pinned in
//                    the table from the start; if the address space closed meanwhile, the
//                    promise rejects with ERR_VFIO_CLOSED (the IOAS went with it).
#include <string>
#include <vector>

#include "async_ioctl.h"
#include "dma_core.h"
#include "memory.h"
#include "memory_table.h"

namespace nvfio {

namespace {

struct FastPath {
  DmaCoreRef core;
  MemoryTableRef memories;
  uint32_t ioas = 0;
  double args[8] = {};
  // Link()'s per-fragment scratch (addresses and lengths), kept between calls: no allocation per link.
  // Kept only up to kScratchKept fragments: a rare huge list does not hold its scratch for good.
  static constexpr size_t kScratchKept = 4096;
  std::vector<uintptr_t> va;
  std::vector<uint64_t> len;
};

// Lets go of Link()'s scratch on the way out (thrown or not) when a list made it larger than kept.
struct ScratchTrim {
  FastPath& fp;
  ~ScratchTrim() {
    if (fp.va.size() <= FastPath::kScratchKept) return;
    std::vector<uintptr_t>().swap(fp.va);
    std::vector<uint64_t>().swap(fp.len);
  }
};
using FastPathRef = std::shared_ptr<FastPath>;

// An exact non-negative integer below 2^53, or false.
inline bool Exact(double d, uint64_t* out) {
  if (!(d >= 0 && d <= 9007199254740991.0)) return false;
  uint64_t v = static_cast<uint64_t>(d);
  *out = v;
  return static_cast<double>(v) == d;
}

[[noreturn]] void BadArgs(Napi::Env env, const char* fn) {
  ThrowRange(env, std::string(fn) + ": its arguments must be non-negative safe integers");
}

// Why Resolve() refused a handle: a closed (or unknown) memory, or a range outside it. Off the hot
// path: messages are built only here.
[[noreturn]] __attribute__((noinline)) void Unresolved(Napi::Env env, FastPath& fp, uint64_t handle,
                                                       uint64_t offset, uint64_t length, int64_t fragment) {
  const std::string what =
      fragment < 0 ? std::string("DmaBuffer") : "fragment " + std::to_string(fragment) + ": DmaBuffer";
  const int64_t slot = fp.memories->Find(handle);
  if (slot < 0) ThrowClosed(env, what.c_str());
  ThrowRange(env, what + ": range [" + std::to_string(offset) + ", +" + std::to_string(length) +
                      ") is empty or outside its " +
                      std::to_string(fp.memories->Length(static_cast<uint32_t>(slot))) + "-byte memory");
}

// The table slot of a handle's memory, checked to hold [offset, offset + length); `fragment` names a
// list's fragment in errors (-1: a single buffer).
inline uint32_t Resolve(Napi::Env env, FastPath& fp, uint64_t handle, uint64_t offset, uint64_t length,
                        int64_t fragment) {
  const int64_t slot = fp.memories->Find(handle);
  if (slot >= 0) {
    const uint64_t size = fp.memories->Length(static_cast<uint32_t>(slot));
    if (length != 0 && offset <= size && length <= size - offset) return static_cast<uint32_t>(slot);
  }
  Unresolved(env, fp, handle, offset, length, fragment);
}

napi_value Uint(napi_env env, uint32_t v) {
  napi_value out;
  napi_create_uint32(env, v, &out);
  return out;
}

napi_value MapUser(napi_env raw, napi_callback_info, FastPath& fp) {
  Napi::Env env(raw);
  uint64_t handle, offset, length, iova, access;
  if (!Exact(fp.args[0], &handle) || !Exact(fp.args[1], &offset) || !Exact(fp.args[2], &length) ||
      !Exact(fp.args[3], &iova) || !Exact(fp.args[4], &access)) {
    BadArgs(env, "mapUser");
  }
  fp.core->Fd(env, "the address space");
  const uint32_t slot = Resolve(env, fp, handle, offset, length, -1);
  const uint8_t* addr = fp.memories->Addr(slot);
  if (fp.core->MapUser(fp.ioas, reinterpret_cast<uintptr_t>(addr + offset), length, iova,
                       static_cast<uint32_t>(access)) < 0) {
    ThrowErrno(env, errno, fp.core->MapCall());
  }
  fp.memories->Pin(slot);
  fp.args[5] = fp.core->pins.AddPinned(fp.ioas, iova, length, slot);
  return nullptr;
}

napi_value Link(napi_env raw, napi_callback_info info, FastPath& fp) {
  Napi::Env env(raw);
  uint64_t iova, access, count;
  if (!Exact(fp.args[0], &iova) || !Exact(fp.args[1], &access) || !Exact(fp.args[2], &count))
    BadArgs(env, "link");
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(raw, info, &argc, argv, nullptr, nullptr);
  napi_typedarray_type type;
  size_t n_doubles = 0;
  void* data = nullptr;
  if (argc < 1 ||
      napi_get_typedarray_info(raw, argv[0], &type, &n_doubles, &data, nullptr, nullptr) != napi_ok ||
      type != napi_float64_array) {
    ThrowType(env, "link: fragments must be a Float64Array of (handle, offset, length) triples");
  }
  if (count == 0 || count > n_doubles / 3)
    ThrowRange(env, "link: count must be 1.." + std::to_string(n_doubles / 3));
  fp.core->Fd(env, "the address space");
  const double* f = static_cast<const double*>(data);
  // Everything is checked before the first ioctl: a bad fragment leaves nothing to undo.
  std::vector<uint32_t> slots;  // the memory the list spans, each once per run of fragments in it
  const ScratchTrim trim{fp};
  if (fp.va.size() < count) {
    fp.va.resize(count);
    fp.len.resize(count);
  }
  uintptr_t* va = fp.va.data();
  uint64_t* len = fp.len.data();
  uint64_t total = 0;
  for (uint64_t i = 0; i < count; i++) {
    uint64_t handle, offset;
    if (!Exact(f[3 * i], &handle) || !Exact(f[3 * i + 1], &offset) || !Exact(f[3 * i + 2], &len[i]))
      BadArgs(env, "link");
    const uint32_t slot = Resolve(env, fp, handle, offset, len[i], static_cast<int64_t>(i));
    if (slots.empty() || slots.back() != slot) slots.push_back(slot);
    va[i] = reinterpret_cast<uintptr_t>(fp.memories->Addr(slot) + offset);
    if (total + len[i] < total || iova + total + len[i] < iova)
      ThrowRange(env, "link: the list runs past the end of the IOVA space");
    total += len[i];
  }
  // One ioctl per run of fragments contiguous in virtual memory.
  uint64_t at = iova;
  for (uint64_t i = 0; i < count;) {
    uint64_t j = i + 1, run = len[i];
    while (j < count && va[j] == va[i] + run) run += len[j++];
    if (fp.core->MapUser(fp.ioas, va[i], run, at, static_cast<uint32_t>(access)) < 0) {
      int err = errno;
      uint64_t done;
      if (at > iova) fp.core->Unmap(fp.ioas, iova, at - iova, &done);
      ThrowErrno(env, err, fp.core->MapCall(),
                 "(fragment " + std::to_string(i) + (j - i > 1 ? ".." + std::to_string(j - 1) : "") + " of " +
                     std::to_string(count) + "; the fragments before it were unmapped again)");
    }
    at += run;
    i = j;
  }
  for (uint32_t slot : slots) fp.memories->Pin(slot);
  const uint32_t first = slots.front();
  slots.erase(slots.begin());
  return Uint(raw, fp.core->pins.AddPinned(fp.ioas, iova, total, first, std::move(slots)));
}

napi_value Unmap(napi_env raw, napi_callback_info, FastPath& fp) {
  Napi::Env env(raw);
  uint64_t id, iova, length;
  if (!Exact(fp.args[0], &id) || !Exact(fp.args[1], &iova) || !Exact(fp.args[2], &length))
    BadArgs(env, "unmap");
  if (fp.core->Closed()) return nullptr;  // closing unmapped everything and dropped the pins
  uint64_t done;
  if (fp.core->Unmap(fp.ioas, iova, length, &done) < 0) ThrowErrno(env, errno, fp.core->UnmapCall());
  fp.core->pins.Remove(static_cast<uint32_t>(id));
  return nullptr;
}

napi_value MapUserAsync(napi_env raw, napi_callback_info info, FastPath& fp) {
  Napi::Env env(raw);
  napi_value argv[5];
  napi_value self;
  size_t argc = 5;
  napi_get_cb_info(raw, info, &argc, argv, &self, nullptr);
  double d[5] = {-1, -1, -1, -1, -1};
  for (size_t i = 0; i < argc && i < 5; i++) napi_get_value_double(raw, argv[i], &d[i]);
  uint64_t handle, offset, length, iova, access;
  if (argc < 5 || !Exact(d[0], &handle) || !Exact(d[1], &offset) || !Exact(d[2], &length) ||
      !Exact(d[3], &iova) || !Exact(d[4], &access)) {
    BadArgs(env, "mapUserAsync");
  }
  const int fd = fp.core->Fd(env, "the address space");
  const uint32_t slot = Resolve(env, fp, handle, offset, length, -1);
  std::vector<uint8_t> arg;
  const uintptr_t va = reinterpret_cast<uintptr_t>(fp.memories->Addr(slot) + offset);
  unsigned long request = fp.core->MapRequest(fp.ioas, va, length, iova, static_cast<uint32_t>(access), &arg);
  fp.memories->Pin(slot);  // held from now on: closing the buffer meanwhile frees nothing
  auto core = fp.core;
  auto memories = fp.memories;
  const uint32_t ioas = fp.ioas;
  try {
    return RunIoctlAsync(env, Napi::Object(raw, self), fd, request, std::move(arg),
                         [core, memories, ioas, slot, iova, length](Napi::Env e, int err) -> Napi::Value {
                           if (err != 0 || core->Closed()) {
                             memories->Unpin(slot);
                             if (err != 0) ThrowErrno(e, err, core->MapCall(), "(off the event loop)");
                             ThrowClosed(e, "the address space");
                           }
                           return Napi::Number::New(e, core->pins.AddPinned(ioas, iova, length, slot));
                         });
  } catch (...) {
    fp.memories->Unpin(slot);
    throw;
  }
}

template <napi_value (*Body)(napi_env, napi_callback_info, FastPath&)>
napi_value Call(napi_env env, napi_callback_info info) {
  void* data = nullptr;
  size_t argc = 0;
  napi_get_cb_info(env, info, &argc, nullptr, nullptr, &data);
  try {
    return Body(env, info, **static_cast<FastPathRef*>(data));
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
    return nullptr;
  }
}

}  // namespace

Napi::Object NewFastPath(Napi::Env env, DmaCoreRef core, uint32_t ioas) {
  auto fp = std::make_shared<FastPath>();
  fp->core = std::move(core);
  fp->memories = Data(env).memories;
  if (fp->core->Table(fp->memories) == nullptr)
    ThrowType(env, "an address space is used from the environment that opened it");
  fp->ioas = ioas;
  Napi::Object out = Napi::Object::New(env);
  // The argument block: an ArrayBuffer over fp->args that holds fp while JavaScript can reach it.
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
      env, fp->args, sizeof(fp->args), [](Napi::Env, void*, FastPathRef* h) { delete h; },
      new FastPathRef(fp));
  out.Set("args", Napi::Float64Array::New(env, sizeof(fp->args) / sizeof(double), ab, 0));
  auto bind = [&](const char* name, napi_callback cb) {
    auto* hold = new FastPathRef(fp);
    napi_value fn;
    if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, hold, &fn) != napi_ok ||
        napi_add_finalizer(
            env, fn, hold, [](napi_env, void* d, void*) { delete static_cast<FastPathRef*>(d); }, nullptr,
            nullptr) != napi_ok) {
      delete hold;
      throw Napi::Error::New(env, std::string("cannot create ") + name);
    }
    out.Set(name, Napi::Value(env, fn));
  };
  bind("mapUser", Call<MapUser>);
  bind("link", Call<Link>);
  bind("unmap", Call<Unmap>);
  bind("mapUserAsync", Call<MapUserAsync>);
  return out;
}

}  // namespace nvfio
