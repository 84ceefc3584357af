#include "fragment.h"

#include "file.h"

namespace nvfio {

Fragment ReadFragment(Napi::Env env, const Napi::Value& source, uint64_t offset, uint64_t length,
                      bool as_file) {
  AddonData& data = Data(env);
  Fragment f;
  f.offset = offset;
  f.length = length;
  if (length == 0) ThrowRange(env, "a fragment's length must not be 0");
  if (Memory::Is(source)) {
    Memory* m = Napi::ObjectWrap<Memory>::Unwrap(source.As<Napi::Object>());
    m->CheckRange(env, offset, length);
    f.memory = m->Get(env);
    if (as_file) {
      if (f.memory->Fd() < 0) ThrowType(env, "only memfd memory can be mapped as a file");
      f.file_fd = f.memory->Fd();
    }
  } else {
    f.file_fd = UnwrapAs<File>(source, data.file_ctor, "source")->Fd(env);
  }
  return f;
}

uint32_t PinList(PinTable& pins, uint32_t space, uint64_t iova, uint64_t total,
                 const std::vector<Fragment>& frags) {
  std::vector<MappingRef> held;
  for (const Fragment& f : frags) {
    if (f.memory && (held.empty() || held.back() != f.memory)) held.push_back(f.memory);
  }
  MappingRef first = held.empty() ? nullptr : held.front();
  if (!held.empty()) held.erase(held.begin());
  return pins.Add(space, iova, total, std::move(first), std::move(held));
}

std::vector<Fragment> ReadFragmentList(Napi::Env env, const Napi::Value& value, uint64_t iova,
                                       uint64_t* total) {
  const char* shape =
      "fragments must be { sources: array, ranges: BigUint64Array of (offset, length) pairs, asFile: "
      "Uint8Array }";
  if (!value.IsObject()) ThrowType(env, shape);
  Napi::Object packed = value.As<Napi::Object>();
  Napi::Value sources_v = packed.Get("sources"), ranges_v = packed.Get("ranges"),
              as_file_v = packed.Get("asFile");
  if (!sources_v.IsArray() || !ranges_v.IsTypedArray() || !as_file_v.IsTypedArray() ||
      ranges_v.As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array ||
      as_file_v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowType(env, shape);
  }
  Napi::Array sources = sources_v.As<Napi::Array>();
  Napi::BigUint64Array ranges_a = ranges_v.As<Napi::BigUint64Array>();
  Napi::Uint8Array as_file_a = as_file_v.As<Napi::Uint8Array>();
  const uint32_t n = sources.Length();
  if (n == 0 || ranges_a.ElementLength() != 2 * size_t{n} || as_file_a.ElementLength() != n)
    ThrowType(env, shape);
  // Copied first: reading `sources` could run JavaScript that detaches the typed arrays.
  std::vector<uint64_t> ranges(ranges_a.Data(), ranges_a.Data() + 2 * size_t{n});
  std::vector<uint8_t> as_file(as_file_a.Data(), as_file_a.Data() + n);
  std::vector<Fragment> frags;
  frags.reserve(n);
  uint64_t sum = 0;
  for (uint32_t i = 0; i < n; i++) {
    frags.push_back(ReadFragment(env, sources.Get(i), ranges[2 * i], ranges[2 * i + 1], as_file[i] != 0));
    uint64_t len = frags.back().length;
    if (sum + len < sum || iova + (sum + len - 1) < iova)
      ThrowRange(env, "the list runs past the end of the IOVA space");
    sum += len;
  }
  *total = sum;
  return frags;
}

}  // namespace nvfio
