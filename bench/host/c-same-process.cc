// The C side of the host lane's DMA metrics, inside the library's own
// process: an addon the library's side (library-side.ts) loads, so that it
// can time the library and C in turns, sample after sample, on the same CPU,
// heap state and moment. This host's speed moves between runs of the same
// program by more than some targets are wide; the difference of two samples
// taken back to back does not.
//
// It makes the calls the C loop makes (c-dma-ops.h), on an IOAS of its own,
// through the same fake kernel. Node's threads are there, so the kernel
// charges its fd system calls as it charges the library's.
//
//   open()                 a new iommufd and IOAS, and the DMA memory
//   map4k(n)               n map + unmap pairs of one 4 KiB buffer
//   setLive(bool)          the 1,000 other mappings in place, or gone
//   live1000(n)            n pairs past those 1,000 mappings
//   link1024(n)            n links of 1,024 pieces, each undone by one unmap
//
// Each timing returns CPU ns per operation (map + unmap pair, or fragment).
// Build (build.ts): c++ -std=c++17 -O2 -shared -fPIC -I<node's include/node> -o c-same-process.node
// c-same-process.cc
#include <node_api.h>

#include <exception>
#include <memory>

#include "c-dma-ops.h"

namespace {

struct State {
  cside::Ioas ioas = cside::OpenIoas();
  cside::DmaWork work;
  ~State() {
    if (ioas.iommufd >= 0) ::close(ioas.iommufd);
  }
};

State* Get(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  if (data == nullptr) throw std::runtime_error("open() first");
  return static_cast<State*>(data);
}

// The calls' one numeric argument (a count, or 1/0 for setLive's boolean).
double Arg(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 1) throw std::runtime_error("an argument is missing");
  bool b;
  if (napi_get_value_bool(env, argv[0], &b) == napi_ok) return b ? 1 : 0;
  double d;
  if (napi_get_value_double(env, argv[0], &d) != napi_ok || !(d >= 1 && d <= 1e9))
    throw std::runtime_error("the count must be a number in [1, 1e9]");
  return d;
}

napi_value Number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

// `body` with C++ exceptions turned into JavaScript errors.
template <typename F>
napi_value Guard(napi_env env, F body) {
  try {
    return body();
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
    return nullptr;
  }
}

// CPU ns per operation of `ops` operations done by `run`.
template <typename F>
double Timed(double ops, F run) {
  const uint64_t t0 = cside::CpuNs();
  run();
  return double(cside::CpuNs() - t0) / ops;
}

napi_value Open(napi_env env, napi_callback_info) {
  return Guard(env, [&]() -> napi_value {
    void* old = nullptr;
    napi_get_instance_data(env, &old);
    if (old != nullptr) throw std::runtime_error("already open");
    auto state = std::make_unique<State>();
    napi_set_instance_data(
        env, state.release(), [](napi_env, void* data, void*) { delete static_cast<State*>(data); }, nullptr);
    return nullptr;
  });
}

napi_value Map4k(napi_env env, napi_callback_info info) {
  return Guard(env, [&] {
    const State* s = Get(env);
    const uint64_t n = static_cast<uint64_t>(Arg(env, info));
    return Number(env, Timed(double(n), [&] { s->work.MapPairs(s->ioas, s->work.kMapAt, n); }));
  });
}

napi_value Live1000(napi_env env, napi_callback_info info) {
  return Guard(env, [&] {
    const State* s = Get(env);
    const uint64_t n = static_cast<uint64_t>(Arg(env, info));
    return Number(env, Timed(double(n), [&] { s->work.MapPairs(s->ioas, s->work.kAfterLive, n); }));
  });
}

napi_value SetLive(napi_env env, napi_callback_info info) {
  return Guard(env, [&]() -> napi_value {
    const State* s = Get(env);
    s->work.SetLive(s->ioas, Arg(env, info) != 0);
    return nullptr;
  });
}

napi_value Link1024(napi_env env, napi_callback_info info) {
  return Guard(env, [&] {
    const State* s = Get(env);
    const uint64_t n = static_cast<uint64_t>(Arg(env, info));
    return Number(env, Timed(double(n) * cside::kFragments, [&] { s->work.Links(s->ioas, n); }));
  });
}

}  // namespace

NAPI_MODULE_INIT() {
  const napi_property_descriptor fns[] = {
      {"open", nullptr, Open, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"map4k", nullptr, Map4k, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setLive", nullptr, SetLive, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"live1000", nullptr, Live1000, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"link1024", nullptr, Link1024, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(fns) / sizeof(fns[0]), fns);
  return exports;
}
