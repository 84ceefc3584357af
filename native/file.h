// JavaScript class NativeFile: an owned file descriptor handed to
// JavaScript (a dma-buf exported from a device region, an eventfd).
#ifndef NVFIO_FILE_H
#define NVFIO_FILE_H

#include "common.h"

namespace nvfio {

class File : public Napi::ObjectWrap<File> {
 public:
  static constexpr const char* kClassName = "NativeFile";
  static Napi::Function Init(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, UniqueFd fd, const char* kind);

  explicit File(const Napi::CallbackInfo& info);
  int Fd(Napi::Env env) const;

 private:
  static Napi::Value Eventfd(const Napi::CallbackInfo& info);
  Napi::Value FdGetter(const Napi::CallbackInfo& info);
  Napi::Value KindGetter(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Size(const Napi::CallbackInfo& info);

  UniqueFd fd_;
  std::string kind_;
};

}  // namespace nvfio

#endif
