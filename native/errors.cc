// Errors crossing into JavaScript. The class comes from JavaScript
// (lib/errors.ts, handed over with setErrorClass): it adds the hints that
// say what to check; this side gives it the facts.
#include <cstring>
#include <limits>

#include "common.h"

namespace nvfio {

namespace {

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

}  // namespace

void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const std::string& detail) {
  std::string code = ErrnoName(err);
  std::string message = code + ": " + std::strerror(err) + ", " + syscall;
  if (!detail.empty()) message += " " + detail;
  AddonData& data = Data(env);
  Napi::Object info = Napi::Object::New(env);
  info.Set("code", code);
  info.Set("errno", Napi::Number::New(env, -err));  // negative, as Node's own system errors
  info.Set("syscall", syscall);
  if (!detail.empty()) info.Set("detail", detail);
  if (!data.error_class.IsEmpty()) {
    throw Napi::Error(env, data.error_class.New({Napi::String::New(env, message), info}));
  }
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", code);
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", syscall);
  throw e;
}

void ThrowType(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }

void ThrowRange(Napi::Env env, const std::string& message) { throw Napi::RangeError::New(env, message); }

void ThrowClosed(Napi::Env env, const char* what) {
  Napi::Error e = Napi::Error::New(env, std::string(what) + " is closed");
  e.Set("code", "ERR_VFIO_CLOSED");
  throw e;
}

uint64_t ToU64(const Napi::Value& v, const char* name) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowRange(v.Env(), std::string(name) + " must fit in 64 bits and not be negative");
    return r;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
      ThrowRange(v.Env(), std::string(name) + " must be a non-negative safe integer");
    }
    return static_cast<uint64_t>(d);
  }
  ThrowType(v.Env(), std::string(name) + " must be a bigint or a number");
}

uint32_t ToU32(const Napi::Value& v, const char* name) {
  uint64_t r = ToU64(v, name);
  if (r > std::numeric_limits<uint32_t>::max())
    ThrowRange(v.Env(), std::string(name) + " must fit in 32 bits");
  return static_cast<uint32_t>(r);
}

Napi::BigInt FromU64(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }

}  // namespace nvfio
