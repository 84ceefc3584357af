// JavaScript class Device: a VFIO device fd, from a cdev
// (/dev/vfio/devices/vfioN, bound to iommufd) or from a legacy group.
#ifndef NVFIO_DEVICE_H
#define NVFIO_DEVICE_H

#include "common.h"

namespace nvfio {

class Device : public Napi::ObjectWrap<Device> {
 public:
  static constexpr const char* kClassName = "Device";
  static Napi::Function Init(Napi::Env env);
  // A Device over an fd from VFIO_GROUP_GET_DEVICE_FD; `parent` (the group) is kept alive.
  static Napi::Object Wrap(Napi::Env env, UniqueFd fd, Napi::Object parent);

  explicit Device(const Napi::CallbackInfo& info);

 private:
  Napi::Value BindIommufd(const Napi::CallbackInfo& info);
  Napi::Value AttachPt(const Napi::CallbackInfo& info);
  Napi::Value DetachPt(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value RegionInfo(const Napi::CallbackInfo& info);
  Napi::Value IrqInfo(const Napi::CallbackInfo& info);
  Napi::Value SetIrqs(const Napi::CallbackInfo& info);
  Napi::Value Reset(const Napi::CallbackInfo& info);
  Napi::Value ResetAsync(const Napi::CallbackInfo& info);
  Napi::Value Pread(const Napi::CallbackInfo& info);
  Napi::Value Pwrite(const Napi::CallbackInfo& info);
  Napi::Value Mmap(const Napi::CallbackInfo& info);
  Napi::Value DmaBuf(const Napi::CallbackInfo& info);
  Napi::Value Feature(const Napi::CallbackInfo& info);
  Napi::Value FdGetter(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  int Fd(Napi::Env env) const;

  friend class EventfdWatcher;  // its prepared loopback triggers use Fd()

  UniqueFd fd_;
  // What must outlive this device: its group (legacy) or its iommufd (cdev).
  Napi::ObjectReference parent_;
};

}  // namespace nvfio

#endif
