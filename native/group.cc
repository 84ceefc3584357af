#include "group.h"

#include <fcntl.h>

#include "container.h"
#include "device.h"
#include "uapi/vfio.h"

namespace nvfio {

namespace u = uapi;

Napi::Function Group::Init(Napi::Env env) {
  return DefineClass(env, kClassName,
                     {
                         InstanceMethod<&Group::Status>("status"),
                         InstanceMethod<&Group::SetContainer>("setContainer"),
                         InstanceMethod<&Group::UnsetContainer>("unsetContainer"),
                         InstanceMethod<&Group::GetDevice>("getDevice"),
                         InstanceAccessor<&Group::FdGetter>("fd"),
                         InstanceMethod<&Group::Close>("close"),
                     });
}

// new Group(path), e.g. '/dev/vfio/3'
Group::Group(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Group>(info) {
  if (!info[0].IsString()) ThrowType(info.Env(), "path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  fd_.Reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd_.Valid()) ThrowErrno(info.Env(), errno, "open", path);
}

int Group::Fd(Napi::Env env) const {
  if (!fd_.Valid()) ThrowClosed(env, kClassName);
  return fd_.Get();
}

Napi::Value Group::FdGetter(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fd_.Get());
}

// status() -> flags (VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET)
Napi::Value Group::Status(const Napi::CallbackInfo& info) {
  u::vfio_group_status st{};
  st.argsz = sizeof(st);
  if (Ioctl(Fd(info.Env()), u::VFIO_GROUP_GET_STATUS, &st) < 0)
    ThrowErrno(info.Env(), errno, "ioctl(VFIO_GROUP_GET_STATUS)");
  return Napi::Number::New(info.Env(), st.flags);
}

Napi::Value Group::SetContainer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Container* c = UnwrapAs<Container>(info[0], Data(env).container_ctor, "container");
  int32_t cfd = c->Fd(env);
  if (Ioctl(Fd(env), u::VFIO_GROUP_SET_CONTAINER, &cfd) < 0)
    ThrowErrno(env, errno, "ioctl(VFIO_GROUP_SET_CONTAINER)");
  container_ = Napi::Persistent(info[0].As<Napi::Object>());
  return env.Undefined();
}

Napi::Value Group::UnsetContainer(const Napi::CallbackInfo& info) {
  if (Ioctl(Fd(info.Env()), u::VFIO_GROUP_UNSET_CONTAINER, nullptr) < 0) {
    ThrowErrno(info.Env(), errno, "ioctl(VFIO_GROUP_UNSET_CONTAINER)");
  }
  container_.Reset();
  return info.Env().Undefined();
}

// getDevice(name) -> Device, e.g. getDevice('0000:00:03.0')
Napi::Value Group::GetDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) ThrowType(env, "name must be a string (the device's PCI address)");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  UniqueFd dev(Ioctl(Fd(env), u::VFIO_GROUP_GET_DEVICE_FD, const_cast<char*>(name.c_str())));
  if (!dev.Valid()) ThrowErrno(env, errno, "ioctl(VFIO_GROUP_GET_DEVICE_FD)", name);
  // The device keeps this group (and through it the container) alive.
  return Device::Wrap(env, std::move(dev), Value());
}

Napi::Value Group::Close(const Napi::CallbackInfo& info) {
  fd_.Reset();
  container_.Reset();
  return info.Env().Undefined();
}

}  // namespace nvfio
