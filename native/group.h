// JavaScript class Group: a legacy VFIO group (/dev/vfio/GROUP).
#ifndef NVFIO_GROUP_H
#define NVFIO_GROUP_H

#include "common.h"

namespace nvfio {

class Group : public Napi::ObjectWrap<Group> {
 public:
  static constexpr const char* kClassName = "Group";
  static Napi::Function Init(Napi::Env env);

  explicit Group(const Napi::CallbackInfo& info);

 private:
  Napi::Value Status(const Napi::CallbackInfo& info);
  Napi::Value SetContainer(const Napi::CallbackInfo& info);
  Napi::Value UnsetContainer(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value FdGetter(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  int Fd(Napi::Env env) const;

  UniqueFd fd_;
  // The container this group is set to: it must outlive the group's devices.
  Napi::ObjectReference container_;
};

}  // namespace nvfio

#endif
