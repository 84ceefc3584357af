// node-vfio's own definition of the iommufd userspace ABI (Linux uAPI
// <linux/iommufd.h>, as of Linux 7.2), limited to what the addon uses.
//
// Same conventions as vfio.h (which provides the ioctl encoding): kernel
// names inside namespace nvfio::uapi, no macros, `__reserved` fields called
// `reserved`, __aligned_u64 written `alignas(8) uint64_t`. Checked against a
// real headers_install tree by test/abi/abi_check.cc.
//
// Every iommufd ioctl takes a struct whose first field, `size`, is
// sizeof(struct); the kernel requires any bytes beyond what it knows to be 0.
#ifndef NVFIO_UAPI_IOMMUFD_H
#define NVFIO_UAPI_IOMMUFD_H

#include <cstddef>
#include <cstdint>

#include "vfio.h"

namespace nvfio::uapi {

constexpr uint32_t IOMMUFD_TYPE = ';';

// ioctl numbers (the `nr` of each ioctl).
enum : uint32_t {
  IOMMUFD_CMD_BASE = 0x80,
  IOMMUFD_CMD_DESTROY = IOMMUFD_CMD_BASE,
  IOMMUFD_CMD_IOAS_ALLOC = 0x81,
  IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82,
  IOMMUFD_CMD_IOAS_COPY = 0x83,
  IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84,
  IOMMUFD_CMD_IOAS_MAP = 0x85,
  IOMMUFD_CMD_IOAS_UNMAP = 0x86,
  IOMMUFD_CMD_OPTION = 0x87,
  IOMMUFD_CMD_VFIO_IOAS = 0x88,
  IOMMUFD_CMD_HWPT_ALLOC = 0x89,
  IOMMUFD_CMD_GET_HW_INFO = 0x8a,
  IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING = 0x8b,
  IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP = 0x8c,
  IOMMUFD_CMD_HWPT_INVALIDATE = 0x8d,
  IOMMUFD_CMD_FAULT_QUEUE_ALLOC = 0x8e,
  IOMMUFD_CMD_IOAS_MAP_FILE = 0x8f,
  IOMMUFD_CMD_VIOMMU_ALLOC = 0x90,
  IOMMUFD_CMD_VDEVICE_ALLOC = 0x91,
  IOMMUFD_CMD_IOAS_CHANGE_PROCESS = 0x92,
  IOMMUFD_CMD_VEVENTQ_ALLOC = 0x93,
  IOMMUFD_CMD_HW_QUEUE_ALLOC = 0x94,
};

// ---------------------------------------------------------------------------
// IOMMU_DESTROY
// ---------------------------------------------------------------------------

// struct iommu_destroy: destroy any object (IOAS, HWPT, ...) by id.
struct iommu_destroy {
  uint32_t size;
  uint32_t id;
};
static_assert(sizeof(iommu_destroy) == 8);
static_assert(offsetof(iommu_destroy, size) == 0);
static_assert(offsetof(iommu_destroy, id) == 4);

constexpr unsigned long IOMMU_DESTROY = ioc::io(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY);

// ---------------------------------------------------------------------------
// IOMMU_IOAS_ALLOC
// ---------------------------------------------------------------------------

// struct iommu_ioas_alloc
struct iommu_ioas_alloc {
  uint32_t size;
  uint32_t flags;  // must be 0
  uint32_t out_ioas_id;
};
static_assert(sizeof(iommu_ioas_alloc) == 12);
static_assert(offsetof(iommu_ioas_alloc, size) == 0);
static_assert(offsetof(iommu_ioas_alloc, flags) == 4);
static_assert(offsetof(iommu_ioas_alloc, out_ioas_id) == 8);

constexpr unsigned long IOMMU_IOAS_ALLOC = ioc::io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC);

// ---------------------------------------------------------------------------
// IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_ALLOW_IOVAS
// ---------------------------------------------------------------------------

// struct iommu_iova_range (inclusive last)
struct iommu_iova_range {
  alignas(8) uint64_t start;
  alignas(8) uint64_t last;
};
static_assert(sizeof(iommu_iova_range) == 16);
static_assert(offsetof(iommu_iova_range, start) == 0);
static_assert(offsetof(iommu_iova_range, last) == 8);

// struct iommu_ioas_iova_ranges. EMSGSIZE, with num_iovas set to the needed
// count, when the array is too small.
struct iommu_ioas_iova_ranges {
  uint32_t size;
  uint32_t ioas_id;
  uint32_t num_iovas;  // in: array length; out: total ranges
  uint32_t reserved;
  alignas(8) uint64_t allowed_iovas;  // pointer to iommu_iova_range[]
  alignas(8) uint64_t out_iova_alignment;
};
static_assert(sizeof(iommu_ioas_iova_ranges) == 32);
static_assert(offsetof(iommu_ioas_iova_ranges, size) == 0);
static_assert(offsetof(iommu_ioas_iova_ranges, ioas_id) == 4);
static_assert(offsetof(iommu_ioas_iova_ranges, num_iovas) == 8);
static_assert(offsetof(iommu_ioas_iova_ranges, reserved) == 12);
static_assert(offsetof(iommu_ioas_iova_ranges, allowed_iovas) == 16);
static_assert(offsetof(iommu_ioas_iova_ranges, out_iova_alignment) == 24);

constexpr unsigned long IOMMU_IOAS_IOVA_RANGES = ioc::io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES);

// struct iommu_ioas_allow_iovas
struct iommu_ioas_allow_iovas {
  uint32_t size;
  uint32_t ioas_id;
  uint32_t num_iovas;
  uint32_t reserved;
  alignas(8) uint64_t allowed_iovas;  // pointer to iommu_iova_range[]
};
static_assert(sizeof(iommu_ioas_allow_iovas) == 24);
static_assert(offsetof(iommu_ioas_allow_iovas, size) == 0);
static_assert(offsetof(iommu_ioas_allow_iovas, ioas_id) == 4);
static_assert(offsetof(iommu_ioas_allow_iovas, num_iovas) == 8);
static_assert(offsetof(iommu_ioas_allow_iovas, reserved) == 12);
static_assert(offsetof(iommu_ioas_allow_iovas, allowed_iovas) == 16);

constexpr unsigned long IOMMU_IOAS_ALLOW_IOVAS = ioc::io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOW_IOVAS);

// ---------------------------------------------------------------------------
// IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_COPY, IOMMU_IOAS_UNMAP
// ---------------------------------------------------------------------------

// enum iommufd_ioas_map_flags (flags of map, map_file and copy)
enum iommufd_ioas_map_flags : uint32_t {
  IOMMU_IOAS_MAP_FIXED_IOVA = 1u << 0,  // else the kernel picks the IOVA
  IOMMU_IOAS_MAP_WRITEABLE = 1u << 1,   // device may write
  IOMMU_IOAS_MAP_READABLE = 1u << 2,    // device may read
};

// struct iommu_ioas_map: map user memory.
struct iommu_ioas_map {
  uint32_t size;
  uint32_t flags;
  uint32_t ioas_id;
  uint32_t reserved;
  alignas(8) uint64_t user_va;
  alignas(8) uint64_t length;
  alignas(8) uint64_t iova;  // in with FIXED_IOVA, else out
};
static_assert(sizeof(iommu_ioas_map) == 40);
static_assert(offsetof(iommu_ioas_map, size) == 0);
static_assert(offsetof(iommu_ioas_map, flags) == 4);
static_assert(offsetof(iommu_ioas_map, ioas_id) == 8);
static_assert(offsetof(iommu_ioas_map, reserved) == 12);
static_assert(offsetof(iommu_ioas_map, user_va) == 16);
static_assert(offsetof(iommu_ioas_map, length) == 24);
static_assert(offsetof(iommu_ioas_map, iova) == 32);

constexpr unsigned long IOMMU_IOAS_MAP = ioc::io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP);

// struct iommu_ioas_map_file: map a memfd, or a VFIO dma-buf
// (VFIO_DEVICE_FEATURE_DMA_BUF, single range) for P2P.
struct iommu_ioas_map_file {
  uint32_t size;
  uint32_t flags;
  uint32_t ioas_id;
  int32_t fd;
  alignas(8) uint64_t start;  // byte offset into the file
  alignas(8) uint64_t length;
  alignas(8) uint64_t iova;
};
static_assert(sizeof(iommu_ioas_map_file) == 40);
static_assert(offsetof(iommu_ioas_map_file, size) == 0);
static_assert(offsetof(iommu_ioas_map_file, flags) == 4);
static_assert(offsetof(iommu_ioas_map_file, ioas_id) == 8);
static_assert(offsetof(iommu_ioas_map_file, fd) == 12);
static_assert(offsetof(iommu_ioas_map_file, start) == 16);
static_assert(offsetof(iommu_ioas_map_file, length) == 24);
static_assert(offsetof(iommu_ioas_map_file, iova) == 32);

constexpr unsigned long IOMMU_IOAS_MAP_FILE = ioc::io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP_FILE);

// struct iommu_ioas_copy: map an existing mapping of one IOAS into another.
struct iommu_ioas_copy {
  uint32_t size;
  uint32_t flags;
  uint32_t dst_ioas_id;
  uint32_t src_ioas_id;
  alignas(8) uint64_t length;
  alignas(8) uint64_t dst_iova;
  alignas(8) uint64_t src_iova;
};
static_assert(sizeof(iommu_ioas_copy) == 40);
static_assert(offsetof(iommu_ioas_copy, size) == 0);
static_assert(offsetof(iommu_ioas_copy, flags) == 4);
static_assert(offsetof(iommu_ioas_copy, dst_ioas_id) == 8);
static_assert(offsetof(iommu_ioas_copy, src_ioas_id) == 12);
static_assert(offsetof(iommu_ioas_copy, length) == 16);
static_assert(offsetof(iommu_ioas_copy, dst_iova) == 24);
static_assert(offsetof(iommu_ioas_copy, src_iova) == 32);

constexpr unsigned long IOMMU_IOAS_COPY = ioc::io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_COPY);

// struct iommu_ioas_unmap. iova 0 with length UINT64_MAX unmaps everything.
struct iommu_ioas_unmap {
  uint32_t size;
  uint32_t ioas_id;
  alignas(8) uint64_t iova;
  alignas(8) uint64_t length;  // in: bytes to unmap; out: bytes unmapped
};
static_assert(sizeof(iommu_ioas_unmap) == 24);
static_assert(offsetof(iommu_ioas_unmap, size) == 0);
static_assert(offsetof(iommu_ioas_unmap, ioas_id) == 4);
static_assert(offsetof(iommu_ioas_unmap, iova) == 8);
static_assert(offsetof(iommu_ioas_unmap, length) == 16);

constexpr unsigned long IOMMU_IOAS_UNMAP = ioc::io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP);

// ---------------------------------------------------------------------------
// IOMMU_OPTION
// ---------------------------------------------------------------------------

// enum iommufd_option (iommu_option.option_id)
enum iommufd_option : uint32_t {
  IOMMU_OPTION_RLIMIT_MODE = 0,  // global; 0 per-user, 1 per-process
  IOMMU_OPTION_HUGE_PAGES = 1,   // per IOAS; object_id is the IOAS
};

// enum iommufd_option_ops (iommu_option.op)
enum iommufd_option_ops : uint16_t {
  IOMMU_OPTION_OP_SET = 0,
  IOMMU_OPTION_OP_GET = 1,
};

// struct iommu_option
struct iommu_option {
  uint32_t size;
  uint32_t option_id;
  uint16_t op;
  uint16_t reserved;
  uint32_t object_id;
  alignas(8) uint64_t val64;
};
static_assert(sizeof(iommu_option) == 24);
static_assert(offsetof(iommu_option, size) == 0);
static_assert(offsetof(iommu_option, option_id) == 4);
static_assert(offsetof(iommu_option, op) == 8);
static_assert(offsetof(iommu_option, reserved) == 10);
static_assert(offsetof(iommu_option, object_id) == 12);
static_assert(offsetof(iommu_option, val64) == 16);

constexpr unsigned long IOMMU_OPTION = ioc::io(IOMMUFD_TYPE, IOMMUFD_CMD_OPTION);

// ---------------------------------------------------------------------------
// IOMMU_GET_HW_INFO
// ---------------------------------------------------------------------------

// enum iommu_hw_info_type (iommu_hw_info.in_data_type / out_data_type)
enum iommu_hw_info_type : uint32_t {
  IOMMU_HW_INFO_TYPE_NONE = 0,     // output: driver reports no data
  IOMMU_HW_INFO_TYPE_DEFAULT = 0,  // input: whatever the driver has
  IOMMU_HW_INFO_TYPE_INTEL_VTD = 1,
  IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2,
  IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV = 3,
  IOMMU_HW_INFO_TYPE_AMD = 4,
};

// enum iommufd_hw_capabilities (iommu_hw_info.out_capabilities)
enum iommufd_hw_capabilities : uint64_t {
  IOMMU_HW_CAP_DIRTY_TRACKING = 1u << 0,
  IOMMU_HW_CAP_PCI_PASID_EXEC = 1u << 1,
  IOMMU_HW_CAP_PCI_PASID_PRIV = 1u << 2,
  IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED = 1u << 3,
};

// enum iommufd_hw_info_flags (iommu_hw_info.flags)
enum iommufd_hw_info_flags : uint32_t {
  IOMMU_HW_INFO_FLAG_INPUT_TYPE = 1u << 0,  // in_data_type is valid
};

// struct iommu_hw_info: about the IOMMU behind a bound device (dev_id).
struct iommu_hw_info {
  uint32_t size;
  uint32_t flags;
  uint32_t dev_id;
  uint32_t data_len;              // in: buffer length; out: length filled
  alignas(8) uint64_t data_uptr;  // pointer to the type-specific buffer
  union {
    uint32_t in_data_type;
    uint32_t out_data_type;
  };
  uint8_t out_max_pasid_log2;  // 0: no PASID
  uint8_t reserved[3];
  alignas(8) uint64_t out_capabilities;
};
static_assert(sizeof(iommu_hw_info) == 40);
static_assert(offsetof(iommu_hw_info, size) == 0);
static_assert(offsetof(iommu_hw_info, flags) == 4);
static_assert(offsetof(iommu_hw_info, dev_id) == 8);
static_assert(offsetof(iommu_hw_info, data_len) == 12);
static_assert(offsetof(iommu_hw_info, data_uptr) == 16);
static_assert(offsetof(iommu_hw_info, in_data_type) == 24);
static_assert(offsetof(iommu_hw_info, out_data_type) == 24);
static_assert(offsetof(iommu_hw_info, out_max_pasid_log2) == 28);
static_assert(offsetof(iommu_hw_info, reserved) == 29);
static_assert(offsetof(iommu_hw_info, out_capabilities) == 32);

constexpr unsigned long IOMMU_GET_HW_INFO = ioc::io(IOMMUFD_TYPE, IOMMUFD_CMD_GET_HW_INFO);

// Spot check of the encoding against a number computed by hand.
static_assert(IOMMU_IOAS_MAP_FILE == 0x3b8f);

}  // namespace nvfio::uapi

#endif  // NVFIO_UAPI_IOMMUFD_H
