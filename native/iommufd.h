// JavaScript class Iommufd: /dev/iommu and its IOAS (I/O address space)
// ioctls. Thin: each method is one ioctl; the IOVA policy lives in lib/.
#ifndef NVFIO_IOMMUFD_H
#define NVFIO_IOMMUFD_H

#include "common.h"
#include "dma_core.h"
#include "fragment.h"

namespace nvfio {

class Iommufd : public Napi::ObjectWrap<Iommufd> {
 public:
  static constexpr const char* kClassName = "Iommufd";
  static Napi::Function Init(Napi::Env env);

  explicit Iommufd(const Napi::CallbackInfo& info);
  ~Iommufd() override;
  int Fd(Napi::Env env) const;

 private:
  Napi::Value IoasAlloc(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  Napi::Value IovaRanges(const Napi::CallbackInfo& info);
  Napi::Value AllowIovas(const Napi::CallbackInfo& info);
  Napi::Value Map(const Napi::CallbackInfo& info);
  Napi::Value MapList(const Napi::CallbackInfo& info);
  Napi::Value Copy(const Napi::CallbackInfo& info);
  Napi::Value Unmap(const Napi::CallbackInfo& info);
  Napi::Value Option(const Napi::CallbackInfo& info);
  Napi::Value PinCount(const Napi::CallbackInfo& info);
  Napi::Value FastPath(const Napi::CallbackInfo& info);
  Napi::Value FdGetter(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  // One fragment: user memory (IOMMU_IOAS_MAP) or a file (IOMMU_IOAS_MAP_FILE), at `iova` when
  // `fixed`, else where the kernel chooses. Returns the IOVA.
  uint64_t MapOne(Napi::Env env, uint32_t ioas, const Fragment& f, uint64_t iova, bool fixed, uint32_t flags);
  void UnmapQuiet(uint32_t ioas, uint64_t iova, uint64_t length);

  // The fd and the pins, shared with the hot-path functions (fastPath()).
  DmaCoreRef core_;
};

}  // namespace nvfio

#endif
