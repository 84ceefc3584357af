#include "dma_core.h"

#include <cstring>

#include "uapi/iommufd.h"
#include "uapi/vfio.h"

namespace nvfio {

namespace u = uapi;

namespace {

u::iommu_ioas_map IoasMap(uint32_t ioas, uintptr_t va, uint64_t length, uint64_t iova, uint32_t access) {
  u::iommu_ioas_map cmd{};
  cmd.size = sizeof(cmd);
  cmd.flags = u::IOMMU_IOAS_MAP_FIXED_IOVA |
              ((access & kAccessRead) ? uint32_t{u::IOMMU_IOAS_MAP_READABLE} : 0u) |
              ((access & kAccessWrite) ? uint32_t{u::IOMMU_IOAS_MAP_WRITEABLE} : 0u);
  cmd.ioas_id = ioas;
  cmd.user_va = va;
  cmd.length = length;
  cmd.iova = iova;
  return cmd;
}

u::vfio_iommu_type1_dma_map Type1Map(uintptr_t va, uint64_t length, uint64_t iova, uint32_t access) {
  u::vfio_iommu_type1_dma_map cmd{};
  cmd.argsz = sizeof(cmd);
  cmd.flags = ((access & kAccessRead) ? u::VFIO_DMA_MAP_FLAG_READ : 0u) |
              ((access & kAccessWrite) ? u::VFIO_DMA_MAP_FLAG_WRITE : 0u);
  cmd.vaddr = va;
  cmd.iova = iova;
  cmd.size = length;
  return cmd;
}

template <typename T>
void Store(const T& cmd, std::vector<uint8_t>* arg) {
  arg->resize(sizeof(T));
  std::memcpy(arg->data(), &cmd, sizeof(T));
}

}  // namespace

int DmaCore::MapUser(uint32_t ioas, uintptr_t va, uint64_t length, uint64_t iova, uint32_t access) const {
  if (kind_ == Kind::kIommufd) {
    u::iommu_ioas_map cmd = IoasMap(ioas, va, length, iova, access);
    return Ioctl(fd_.Get(), u::IOMMU_IOAS_MAP, &cmd);
  }
  u::vfio_iommu_type1_dma_map cmd = Type1Map(va, length, iova, access);
  return Ioctl(fd_.Get(), u::VFIO_IOMMU_MAP_DMA, &cmd);
}

unsigned long DmaCore::MapRequest(uint32_t ioas, uintptr_t va, uint64_t length, uint64_t iova,
                                  uint32_t access, std::vector<uint8_t>* arg) const {
  if (kind_ == Kind::kIommufd) {
    Store(IoasMap(ioas, va, length, iova, access), arg);
    return u::IOMMU_IOAS_MAP;
  }
  Store(Type1Map(va, length, iova, access), arg);
  return u::VFIO_IOMMU_MAP_DMA;
}

int DmaCore::Unmap(uint32_t ioas, uint64_t iova, uint64_t length, uint64_t* done) const {
  if (kind_ == Kind::kIommufd) {
    u::iommu_ioas_unmap cmd{};
    cmd.size = sizeof(cmd);
    cmd.ioas_id = ioas;
    cmd.iova = iova;
    cmd.length = length;
    int r = Ioctl(fd_.Get(), u::IOMMU_IOAS_UNMAP, &cmd);
    *done = cmd.length;
    return r;
  }
  u::vfio_iommu_type1_dma_unmap cmd{};
  cmd.argsz = sizeof(cmd);
  cmd.iova = iova;
  cmd.size = length;
  int r = Ioctl(fd_.Get(), u::VFIO_IOMMU_UNMAP_DMA, &cmd);
  *done = cmd.size;
  return r;
}

}  // namespace nvfio
