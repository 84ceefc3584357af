#include "fragment.h"

#include "file.h"

namespace nvfio {

Fragment ReadFragment(Napi::Env env, const Napi::Value& source, uint64_t offset, uint64_t length, bool as_file) {
  AddonData& data = Data(env);
  Fragment f;
  f.offset = offset;
  f.length = length;
  if (length == 0) ThrowRange(env, "a fragment's length must not be 0");
  if (source.IsObject() && source.As<Napi::Object>().InstanceOf(data.memory_ctor.Value())) {
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

std::vector<Fragment> ReadFragmentList(Napi::Env env, const Napi::Value& value, uint64_t iova, uint64_t* total) {
  if (!value.IsArray()) ThrowType(env, "fragments must be an array");
  Napi::Array list = value.As<Napi::Array>();
  const uint32_t n = list.Length();
  if (n == 0 || n % 4 != 0) ThrowType(env, "fragments must be a flat array of (source, offset, length, asFile) quadruples");
  std::vector<Fragment> frags;
  frags.reserve(n / 4);
  uint64_t sum = 0;
  for (uint32_t i = 0; i < n; i += 4) {
    frags.push_back(ReadFragment(env, list.Get(i), ToU64(list.Get(i + 1), "offset"), ToU64(list.Get(i + 2), "length"),
                                 list.Get(i + 3).ToBoolean()));
    uint64_t len = frags.back().length;
    if (sum + len < sum || iova + (sum + len - 1) < iova) ThrowRange(env, "the list runs past the end of the IOVA space");
    sum += len;
  }
  *total = sum;
  return frags;
}

}  // namespace nvfio
