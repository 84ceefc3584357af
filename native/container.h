// JavaScript class Container: the legacy /dev/vfio/vfio container with the
// type1 IOMMU. Thin: one method per ioctl; IOVA policy lives in lib/.
#ifndef NVFIO_CONTAINER_H
#define NVFIO_CONTAINER_H

#include "common.h"
#include "dma_core.h"
#include "fragment.h"

namespace nvfio {

class Container : public Napi::ObjectWrap<Container> {
 public:
  static constexpr const char* kClassName = "Container";
  static Napi::Function Init(Napi::Env env);

  explicit Container(const Napi::CallbackInfo& info);
  ~Container() override;
  int Fd(Napi::Env env) const;

 private:
  Napi::Value ApiVersion(const Napi::CallbackInfo& info);
  Napi::Value CheckExtension(const Napi::CallbackInfo& info);
  Napi::Value SetIommu(const Napi::CallbackInfo& info);
  Napi::Value IommuInfo(const Napi::CallbackInfo& info);
  Napi::Value MapDma(const Napi::CallbackInfo& info);
  Napi::Value MapList(const Napi::CallbackInfo& info);
  Napi::Value UnmapDma(const Napi::CallbackInfo& info);
  Napi::Value PinCount(const Napi::CallbackInfo& info);
  Napi::Value FastPath(const Napi::CallbackInfo& info);
  Napi::Value FdGetter(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  void MapOne(Napi::Env env, const Fragment& f, uint64_t iova, uint32_t flags);
  void UnmapQuiet(uint64_t iova, uint64_t length);

  // The fd and the pins, shared with the hot-path functions (fastPath()).
  DmaCoreRef core_;
};

}  // namespace nvfio

#endif
