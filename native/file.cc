#include "file.h"

#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace nvfio {

Napi::Function File::Init(Napi::Env env) {
  return DefineClass(env, kClassName,
                     {
                         StaticMethod<&File::Eventfd>("eventfd"),
                         InstanceAccessor<&File::FdGetter>("fd"),
                         InstanceAccessor<&File::KindGetter>("kind"),
                         InstanceMethod<&File::Size>("size"),
                         InstanceMethod<&File::Close>("close"),
                     });
}

// new NativeFile(external int*, kind) -- only from native code.
File::File(const Napi::CallbackInfo& info) : Napi::ObjectWrap<File>(info) {
  if (info.Length() != 2 || !info[0].IsExternal())
    ThrowType(info.Env(), "NativeFile objects come from the addon");
  fd_.Reset(*info[0].As<Napi::External<int>>().Data());
  kind_ = info[1].As<Napi::String>().Utf8Value();
}

Napi::Object File::Wrap(Napi::Env env, UniqueFd fd, const char* kind) {
  int raw = fd.Get();
  Napi::Object obj =
      Data(env).file_ctor.New({Napi::External<int>::New(env, &raw), Napi::String::New(env, kind)});
  fd.Release();  // now owned by the object
  return obj;
}

// NativeFile.eventfd(): a non-blocking eventfd, for interrupts.
Napi::Value File::Eventfd(const Napi::CallbackInfo& info) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd.Valid()) ThrowErrno(info.Env(), errno, "eventfd");
  return Wrap(info.Env(), std::move(fd), "eventfd");
}

int File::Fd(Napi::Env env) const {
  if (!fd_.Valid()) ThrowClosed(env, kClassName);
  return fd_.Get();
}

Napi::Value File::FdGetter(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fd_.Get());
}

Napi::Value File::KindGetter(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), kind_); }

// The size the file reports (a dma-buf's size is its exported length).
Napi::Value File::Size(const Napi::CallbackInfo& info) {
  off_t end = ::lseek(Fd(info.Env()), 0, SEEK_END);
  if (end < 0) ThrowErrno(info.Env(), errno, "lseek", "(" + kind_ + ")");
  return FromU64(info.Env(), static_cast<uint64_t>(end));
}

Napi::Value File::Close(const Napi::CallbackInfo& info) {
  fd_.Reset();
  return info.Env().Undefined();
}

}  // namespace nvfio
