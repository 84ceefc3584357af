// node-vfio's own definition of the VFIO userspace ABI (Linux uAPI
// <linux/vfio.h>, as of Linux 7.2), limited to what the addon uses.
//
// The addon never includes <linux/vfio.h>: build hosts ship older headers
// (Debian 12 has 6.1, without iommufd cdev binding or DMA-buf export).
// Values and layouts here are the kernel's; test/abi/abi_check.cc compares
// every one of them against a real headers_install tree.
//
// Conventions:
//  - Names are the kernel's, inside namespace nvfio::uapi; nothing here is a
//    macro. Kernel fields named `__reserved`/`__pad` are called `reserved`.
//  - __u64 is uint64_t, __aligned_u64 is `alignas(8) uint64_t` (they only
//    differ on i386, but we follow the kernel's spelling field by field).
//  - Flexible array members (`T name[]`) are not ISO C++. They are left out
//    of the struct; a static `name_offset` gives their offset and a `name()`
//    accessor returns a pointer to the first element. sizeof() of the struct
//    is the kernel's sizeof() (the array contributes no size), and where the
//    array's elements are more aligned than the rest, the struct is declared
//    alignas(element) to keep the kernel's alignof() too.
#ifndef NVFIO_UAPI_VFIO_H
#define NVFIO_UAPI_VFIO_H

#include <cstddef>
#include <cstdint>
#include <type_traits>

#if defined(__alpha__) || defined(__mips__) || defined(__hppa__) || defined(__powerpc__) || defined(__sparc__)
#error "nvfio::uapi only implements the asm-generic ioctl encoding"
#endif

namespace nvfio::uapi {

// ---------------------------------------------------------------------------
// ioctl request encoding (include/uapi/asm-generic/ioctl.h):
//   bits 0..7 nr, 8..15 type, 16..29 argument size, 30..31 direction.
// ---------------------------------------------------------------------------
namespace ioc {

constexpr unsigned kNrShift = 0;
constexpr unsigned kTypeShift = 8;
constexpr unsigned kSizeShift = 16;
constexpr unsigned kDirShift = 30;
constexpr std::size_t kMaxSize = (1u << 14) - 1;

constexpr unsigned kNone = 0;   // _IOC_NONE
constexpr unsigned kWrite = 1;  // _IOC_WRITE: userspace writes, kernel reads
constexpr unsigned kRead = 2;   // _IOC_READ: kernel writes, userspace reads

constexpr unsigned long encode(unsigned dir, unsigned type, unsigned nr, std::size_t size) {
  return (static_cast<unsigned long>(dir) << kDirShift) |
         (static_cast<unsigned long>(type & 0xff) << kTypeShift) |
         (static_cast<unsigned long>(nr & 0xff) << kNrShift) |
         (static_cast<unsigned long>(size & kMaxSize) << kSizeShift);
}

// _IO(type, nr): no argument size encoded. VFIO and iommufd use only this:
// their structs carry their own size (argsz / size) as the first field.
constexpr unsigned long io(unsigned type, unsigned nr) { return encode(kNone, type, nr, 0); }

// _IOR / _IOW / _IOWR, for the other subsystems the addon talks to.
template <class Arg>
constexpr unsigned long ior(unsigned type, unsigned nr) {
  static_assert(sizeof(Arg) <= kMaxSize, "ioctl argument too large");
  return encode(kRead, type, nr, sizeof(Arg));
}
template <class Arg>
constexpr unsigned long iow(unsigned type, unsigned nr) {
  static_assert(sizeof(Arg) <= kMaxSize, "ioctl argument too large");
  return encode(kWrite, type, nr, sizeof(Arg));
}
template <class Arg>
constexpr unsigned long iowr(unsigned type, unsigned nr) {
  static_assert(sizeof(Arg) <= kMaxSize, "ioctl argument too large");
  return encode(kRead | kWrite, type, nr, sizeof(Arg));
}

}  // namespace ioc

namespace detail {
// Pointer to a flexible array member `offset` bytes into `s`, keeping const.
template <class Elem, class Struct>
inline auto flex_array(Struct* s, std::size_t offset) {
  using Byte = std::conditional_t<std::is_const_v<Struct>, const unsigned char, unsigned char>;
  using E = std::conditional_t<std::is_const_v<Struct>, const Elem, Elem>;
  return reinterpret_cast<E*>(reinterpret_cast<Byte*>(s) + offset);
}
}  // namespace detail

// ---------------------------------------------------------------------------
// API version and extensions (VFIO_CHECK_EXTENSION arguments)
// ---------------------------------------------------------------------------
constexpr int32_t VFIO_API_VERSION = 0;

constexpr uint32_t VFIO_TYPE1_IOMMU = 1;
constexpr uint32_t VFIO_SPAPR_TCE_IOMMU = 2;
constexpr uint32_t VFIO_TYPE1v2_IOMMU = 3;
constexpr uint32_t VFIO_DMA_CC_IOMMU = 4;  // IOMMU enforces cache coherence
constexpr uint32_t VFIO_EEH = 5;
constexpr uint32_t VFIO_SPAPR_TCE_v2_IOMMU = 7;
constexpr uint32_t VFIO_NOIOMMU_IOMMU = 8;
constexpr uint32_t VFIO_UNMAP_ALL = 9;      // VFIO_DMA_UNMAP_FLAG_ALL works
constexpr uint32_t VFIO_UPDATE_VADDR = 10;  // the *_FLAG_VADDR flags work

constexpr uint32_t VFIO_TYPE = ';';
constexpr uint32_t VFIO_BASE = 100;

// Header of every capability in an INFO ioctl's capability chain. `next` and
// the INFO struct's cap_offset are byte offsets from the start of the INFO
// buffer; 0 ends the chain.
struct vfio_info_cap_header {
  uint16_t id;
  uint16_t version;
  uint32_t next;
};
static_assert(sizeof(vfio_info_cap_header) == 8);
static_assert(offsetof(vfio_info_cap_header, id) == 0);
static_assert(offsetof(vfio_info_cap_header, version) == 2);
static_assert(offsetof(vfio_info_cap_header, next) == 4);

// ---------------------------------------------------------------------------
// Container fd (/dev/vfio/vfio)
// ---------------------------------------------------------------------------
constexpr unsigned long VFIO_GET_API_VERSION = ioc::io(VFIO_TYPE, VFIO_BASE + 0);
constexpr unsigned long VFIO_CHECK_EXTENSION = ioc::io(VFIO_TYPE, VFIO_BASE + 1);
constexpr unsigned long VFIO_SET_IOMMU = ioc::io(VFIO_TYPE, VFIO_BASE + 2);

// ---------------------------------------------------------------------------
// Group fd (/dev/vfio/$GROUP)
// ---------------------------------------------------------------------------

// VFIO_GROUP_GET_STATUS: struct vfio_group_status
struct vfio_group_status {
  uint32_t argsz;
  uint32_t flags;
};
static_assert(sizeof(vfio_group_status) == 8);
static_assert(offsetof(vfio_group_status, argsz) == 0);
static_assert(offsetof(vfio_group_status, flags) == 4);

constexpr uint32_t VFIO_GROUP_FLAGS_VIABLE = 1u << 0;
constexpr uint32_t VFIO_GROUP_FLAGS_CONTAINER_SET = 1u << 1;

constexpr unsigned long VFIO_GROUP_GET_STATUS = ioc::io(VFIO_TYPE, VFIO_BASE + 3);
// Argument: pointer to the container fd (int32_t).
constexpr unsigned long VFIO_GROUP_SET_CONTAINER = ioc::io(VFIO_TYPE, VFIO_BASE + 4);
constexpr unsigned long VFIO_GROUP_UNSET_CONTAINER = ioc::io(VFIO_TYPE, VFIO_BASE + 5);
// Argument: NUL-terminated device name, e.g. "0000:00:04.0".
constexpr unsigned long VFIO_GROUP_GET_DEVICE_FD = ioc::io(VFIO_TYPE, VFIO_BASE + 6);

// ---------------------------------------------------------------------------
// Device fd: VFIO_DEVICE_GET_INFO
// ---------------------------------------------------------------------------

// struct vfio_device_info
struct vfio_device_info {
  uint32_t argsz;
  uint32_t flags;
  uint32_t num_regions;  // max region index + 1
  uint32_t num_irqs;     // max IRQ index + 1
  uint32_t cap_offset;   // first capability, if VFIO_DEVICE_FLAGS_CAPS
  uint32_t pad;
};
static_assert(sizeof(vfio_device_info) == 24);
static_assert(offsetof(vfio_device_info, argsz) == 0);
static_assert(offsetof(vfio_device_info, flags) == 4);
static_assert(offsetof(vfio_device_info, num_regions) == 8);
static_assert(offsetof(vfio_device_info, num_irqs) == 12);
static_assert(offsetof(vfio_device_info, cap_offset) == 16);
static_assert(offsetof(vfio_device_info, pad) == 20);

constexpr uint32_t VFIO_DEVICE_FLAGS_RESET = 1u << 0;
constexpr uint32_t VFIO_DEVICE_FLAGS_PCI = 1u << 1;
constexpr uint32_t VFIO_DEVICE_FLAGS_PLATFORM = 1u << 2;
constexpr uint32_t VFIO_DEVICE_FLAGS_AMBA = 1u << 3;
constexpr uint32_t VFIO_DEVICE_FLAGS_CCW = 1u << 4;
constexpr uint32_t VFIO_DEVICE_FLAGS_AP = 1u << 5;
constexpr uint32_t VFIO_DEVICE_FLAGS_FSL_MC = 1u << 6;
constexpr uint32_t VFIO_DEVICE_FLAGS_CAPS = 1u << 7;
constexpr uint32_t VFIO_DEVICE_FLAGS_CDX = 1u << 8;

constexpr unsigned long VFIO_DEVICE_GET_INFO = ioc::io(VFIO_TYPE, VFIO_BASE + 7);

// ---------------------------------------------------------------------------
// Device fd: VFIO_DEVICE_GET_REGION_INFO
// ---------------------------------------------------------------------------

// struct vfio_region_info
struct vfio_region_info {
  uint32_t argsz;
  uint32_t flags;
  uint32_t index;
  uint32_t cap_offset;         // first capability, if VFIO_REGION_INFO_FLAG_CAPS
  alignas(8) uint64_t size;    // bytes
  alignas(8) uint64_t offset;  // of the region within the device fd
};
static_assert(sizeof(vfio_region_info) == 32);
static_assert(offsetof(vfio_region_info, argsz) == 0);
static_assert(offsetof(vfio_region_info, flags) == 4);
static_assert(offsetof(vfio_region_info, index) == 8);
static_assert(offsetof(vfio_region_info, cap_offset) == 12);
static_assert(offsetof(vfio_region_info, size) == 16);
static_assert(offsetof(vfio_region_info, offset) == 24);

constexpr uint32_t VFIO_REGION_INFO_FLAG_READ = 1u << 0;
constexpr uint32_t VFIO_REGION_INFO_FLAG_WRITE = 1u << 1;
constexpr uint32_t VFIO_REGION_INFO_FLAG_MMAP = 1u << 2;
constexpr uint32_t VFIO_REGION_INFO_FLAG_CAPS = 1u << 3;

constexpr unsigned long VFIO_DEVICE_GET_REGION_INFO = ioc::io(VFIO_TYPE, VFIO_BASE + 8);

// Region capability ids (vfio_info_cap_header.id).
constexpr uint16_t VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
constexpr uint16_t VFIO_REGION_INFO_CAP_TYPE = 2;
constexpr uint16_t VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3;  // no payload

// struct vfio_region_sparse_mmap_area
struct vfio_region_sparse_mmap_area {
  alignas(8) uint64_t offset;  // within the region
  alignas(8) uint64_t size;
};
static_assert(sizeof(vfio_region_sparse_mmap_area) == 16);
static_assert(offsetof(vfio_region_sparse_mmap_area, offset) == 0);
static_assert(offsetof(vfio_region_sparse_mmap_area, size) == 8);

// struct vfio_region_info_cap_sparse_mmap (VFIO_REGION_INFO_CAP_SPARSE_MMAP)
struct alignas(vfio_region_sparse_mmap_area) vfio_region_info_cap_sparse_mmap {
  vfio_info_cap_header header;
  uint32_t nr_areas;
  uint32_t reserved;
  // vfio_region_sparse_mmap_area areas[nr_areas] follows.
  static constexpr std::size_t areas_offset = 16;
  vfio_region_sparse_mmap_area* areas() {
    return detail::flex_array<vfio_region_sparse_mmap_area>(this, areas_offset);
  }
  const vfio_region_sparse_mmap_area* areas() const {
    return detail::flex_array<vfio_region_sparse_mmap_area>(this, areas_offset);
  }
};
static_assert(sizeof(vfio_region_info_cap_sparse_mmap) == 16);
static_assert(alignof(vfio_region_info_cap_sparse_mmap) == 8);
static_assert(offsetof(vfio_region_info_cap_sparse_mmap, header) == 0);
static_assert(offsetof(vfio_region_info_cap_sparse_mmap, nr_areas) == 8);
static_assert(offsetof(vfio_region_info_cap_sparse_mmap, reserved) == 12);

// struct vfio_region_info_cap_type (VFIO_REGION_INFO_CAP_TYPE)
struct vfio_region_info_cap_type {
  vfio_info_cap_header header;
  uint32_t type;     // global per bus driver
  uint32_t subtype;  // type specific
};
static_assert(sizeof(vfio_region_info_cap_type) == 16);
static_assert(offsetof(vfio_region_info_cap_type, header) == 0);
static_assert(offsetof(vfio_region_info_cap_type, type) == 8);
static_assert(offsetof(vfio_region_info_cap_type, subtype) == 12);

// vfio_region_info_cap_type.type for PCI vendor types: the flag ORed with the
// PCI vendor id.
constexpr uint32_t VFIO_REGION_TYPE_PCI_VENDOR_TYPE = 1u << 31;
constexpr uint32_t VFIO_REGION_TYPE_PCI_VENDOR_MASK = 0xffff;

// Fixed vfio-pci region indexes (vfio_region_info.index).
enum : uint32_t {
  VFIO_PCI_BAR0_REGION_INDEX = 0,
  VFIO_PCI_BAR1_REGION_INDEX = 1,
  VFIO_PCI_BAR2_REGION_INDEX = 2,
  VFIO_PCI_BAR3_REGION_INDEX = 3,
  VFIO_PCI_BAR4_REGION_INDEX = 4,
  VFIO_PCI_BAR5_REGION_INDEX = 5,
  VFIO_PCI_ROM_REGION_INDEX = 6,
  VFIO_PCI_CONFIG_REGION_INDEX = 7,
  VFIO_PCI_VGA_REGION_INDEX = 8,
  VFIO_PCI_NUM_REGIONS = 9,  // indexes >= 9 are described by capabilities
};

// ---------------------------------------------------------------------------
// Device fd: VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_SET_IRQS
// ---------------------------------------------------------------------------

// struct vfio_irq_info
struct vfio_irq_info {
  uint32_t argsz;
  uint32_t flags;
  uint32_t index;
  uint32_t count;  // number of IRQs within this index
};
static_assert(sizeof(vfio_irq_info) == 16);
static_assert(offsetof(vfio_irq_info, argsz) == 0);
static_assert(offsetof(vfio_irq_info, flags) == 4);
static_assert(offsetof(vfio_irq_info, index) == 8);
static_assert(offsetof(vfio_irq_info, count) == 12);

constexpr uint32_t VFIO_IRQ_INFO_EVENTFD = 1u << 0;
constexpr uint32_t VFIO_IRQ_INFO_MASKABLE = 1u << 1;
constexpr uint32_t VFIO_IRQ_INFO_AUTOMASKED = 1u << 2;
constexpr uint32_t VFIO_IRQ_INFO_NORESIZE = 1u << 3;

constexpr unsigned long VFIO_DEVICE_GET_IRQ_INFO = ioc::io(VFIO_TYPE, VFIO_BASE + 9);

// struct vfio_irq_set
struct vfio_irq_set {
  uint32_t argsz;
  uint32_t flags;
  uint32_t index;
  uint32_t start;
  uint32_t count;
  // uint8_t data[] follows: nothing, count bools (uint8_t) or count eventfds
  // (int32_t), per the DATA_* flag.
  static constexpr std::size_t data_offset = 20;
  uint8_t* data() { return detail::flex_array<uint8_t>(this, data_offset); }
  const uint8_t* data() const { return detail::flex_array<uint8_t>(this, data_offset); }
};
static_assert(sizeof(vfio_irq_set) == 20);
static_assert(offsetof(vfio_irq_set, argsz) == 0);
static_assert(offsetof(vfio_irq_set, flags) == 4);
static_assert(offsetof(vfio_irq_set, index) == 8);
static_assert(offsetof(vfio_irq_set, start) == 12);
static_assert(offsetof(vfio_irq_set, count) == 16);

constexpr uint32_t VFIO_IRQ_SET_DATA_NONE = 1u << 0;
constexpr uint32_t VFIO_IRQ_SET_DATA_BOOL = 1u << 1;
constexpr uint32_t VFIO_IRQ_SET_DATA_EVENTFD = 1u << 2;
constexpr uint32_t VFIO_IRQ_SET_ACTION_MASK = 1u << 3;
constexpr uint32_t VFIO_IRQ_SET_ACTION_UNMASK = 1u << 4;
constexpr uint32_t VFIO_IRQ_SET_ACTION_TRIGGER = 1u << 5;
constexpr uint32_t VFIO_IRQ_SET_DATA_TYPE_MASK =
    VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD;
constexpr uint32_t VFIO_IRQ_SET_ACTION_TYPE_MASK =
    VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER;

constexpr unsigned long VFIO_DEVICE_SET_IRQS = ioc::io(VFIO_TYPE, VFIO_BASE + 10);

// Fixed vfio-pci IRQ indexes (vfio_irq_info.index, vfio_irq_set.index).
enum : uint32_t {
  VFIO_PCI_INTX_IRQ_INDEX = 0,
  VFIO_PCI_MSI_IRQ_INDEX = 1,
  VFIO_PCI_MSIX_IRQ_INDEX = 2,
  VFIO_PCI_ERR_IRQ_INDEX = 3,
  VFIO_PCI_REQ_IRQ_INDEX = 4,
  VFIO_PCI_NUM_IRQS = 5,
};

// ---------------------------------------------------------------------------
// Device fd: reset
// ---------------------------------------------------------------------------
constexpr unsigned long VFIO_DEVICE_RESET = ioc::io(VFIO_TYPE, VFIO_BASE + 11);

// struct vfio_pci_dependent_device: one device affected by a hot reset.
struct vfio_pci_dependent_device {
  union {
    uint32_t group_id;  // legacy group/container API
    uint32_t devid;     // cdev API (VFIO_PCI_HOT_RESET_FLAG_DEV_ID)
  };
  uint16_t segment;
  uint8_t bus;
  uint8_t devfn;
};
static_assert(sizeof(vfio_pci_dependent_device) == 8);
static_assert(offsetof(vfio_pci_dependent_device, group_id) == 0);
static_assert(offsetof(vfio_pci_dependent_device, devid) == 0);
static_assert(offsetof(vfio_pci_dependent_device, segment) == 4);
static_assert(offsetof(vfio_pci_dependent_device, bus) == 6);
static_assert(offsetof(vfio_pci_dependent_device, devfn) == 7);

// Special vfio_pci_dependent_device.devid values (the kernel writes -1).
constexpr uint32_t VFIO_PCI_DEVID_OWNED = 0;
constexpr uint32_t VFIO_PCI_DEVID_NOT_OWNED = 0xffffffffu;

// struct vfio_pci_hot_reset_info (VFIO_DEVICE_GET_PCI_HOT_RESET_INFO)
struct vfio_pci_hot_reset_info {
  uint32_t argsz;
  uint32_t flags;
  uint32_t count;
  // vfio_pci_dependent_device devices[count] follows.
  static constexpr std::size_t devices_offset = 12;
  vfio_pci_dependent_device* devices() {
    return detail::flex_array<vfio_pci_dependent_device>(this, devices_offset);
  }
  const vfio_pci_dependent_device* devices() const {
    return detail::flex_array<vfio_pci_dependent_device>(this, devices_offset);
  }
};
static_assert(sizeof(vfio_pci_hot_reset_info) == 12);
static_assert(offsetof(vfio_pci_hot_reset_info, argsz) == 0);
static_assert(offsetof(vfio_pci_hot_reset_info, flags) == 4);
static_assert(offsetof(vfio_pci_hot_reset_info, count) == 8);

constexpr uint32_t VFIO_PCI_HOT_RESET_FLAG_DEV_ID = 1u << 0;
constexpr uint32_t VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED = 1u << 1;

// Same number as VFIO_IOMMU_GET_INFO; that one is issued on a container fd.
constexpr unsigned long VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = ioc::io(VFIO_TYPE, VFIO_BASE + 12);

// struct vfio_pci_hot_reset (VFIO_DEVICE_PCI_HOT_RESET)
struct vfio_pci_hot_reset {
  uint32_t argsz;
  uint32_t flags;
  uint32_t count;
  // int32_t group_fds[count] follows (empty for cdev-opened devices).
  static constexpr std::size_t group_fds_offset = 12;
  int32_t* group_fds() { return detail::flex_array<int32_t>(this, group_fds_offset); }
  const int32_t* group_fds() const { return detail::flex_array<int32_t>(this, group_fds_offset); }
};
static_assert(sizeof(vfio_pci_hot_reset) == 12);
static_assert(offsetof(vfio_pci_hot_reset, argsz) == 0);
static_assert(offsetof(vfio_pci_hot_reset, flags) == 4);
static_assert(offsetof(vfio_pci_hot_reset, count) == 8);

constexpr unsigned long VFIO_DEVICE_PCI_HOT_RESET = ioc::io(VFIO_TYPE, VFIO_BASE + 13);

// ---------------------------------------------------------------------------
// Device fd: VFIO_DEVICE_FEATURE
// ---------------------------------------------------------------------------

// struct vfio_device_feature
struct vfio_device_feature {
  uint32_t argsz;
  uint32_t flags;  // feature id | GET/SET/PROBE
  // uint8_t data[] follows: the feature's own struct.
  static constexpr std::size_t data_offset = 8;
  uint8_t* data() { return detail::flex_array<uint8_t>(this, data_offset); }
  const uint8_t* data() const { return detail::flex_array<uint8_t>(this, data_offset); }
};
static_assert(sizeof(vfio_device_feature) == 8);
static_assert(offsetof(vfio_device_feature, argsz) == 0);
static_assert(offsetof(vfio_device_feature, flags) == 4);

constexpr uint32_t VFIO_DEVICE_FEATURE_MASK = 0xffff;  // feature id
constexpr uint32_t VFIO_DEVICE_FEATURE_GET = 1u << 16;
constexpr uint32_t VFIO_DEVICE_FEATURE_SET = 1u << 17;
constexpr uint32_t VFIO_DEVICE_FEATURE_PROBE = 1u << 18;

constexpr unsigned long VFIO_DEVICE_FEATURE = ioc::io(VFIO_TYPE, VFIO_BASE + 17);

// Feature ids used by the addon.
constexpr uint32_t VFIO_DEVICE_FEATURE_PCI_VF_TOKEN = 0;  // data: 16-byte UUID
constexpr uint32_t VFIO_DEVICE_FEATURE_BUS_MASTER = 10;
constexpr uint32_t VFIO_DEVICE_FEATURE_DMA_BUF = 11;

// struct vfio_device_feature_bus_master (VFIO_DEVICE_FEATURE_BUS_MASTER, SET)
struct vfio_device_feature_bus_master {
  uint32_t op;
};
static_assert(sizeof(vfio_device_feature_bus_master) == 4);
static_assert(offsetof(vfio_device_feature_bus_master, op) == 0);

constexpr uint32_t VFIO_DEVICE_FEATURE_CLEAR_MASTER = 0;
constexpr uint32_t VFIO_DEVICE_FEATURE_SET_MASTER = 1;

// struct vfio_region_dma_range: a slice of a region to export.
struct vfio_region_dma_range {
  uint64_t offset;
  uint64_t length;
};
static_assert(sizeof(vfio_region_dma_range) == 16);
static_assert(offsetof(vfio_region_dma_range, offset) == 0);
static_assert(offsetof(vfio_region_dma_range, length) == 8);

// struct vfio_device_feature_dma_buf (VFIO_DEVICE_FEATURE_DMA_BUF, GET):
// the ioctl returns a new dma-buf fd.
struct alignas(vfio_region_dma_range) vfio_device_feature_dma_buf {
  uint32_t region_index;
  uint32_t open_flags;  // O_RDWR, O_CLOEXEC, ...
  uint32_t flags;       // must be 0
  uint32_t nr_ranges;
  // vfio_region_dma_range dma_ranges[nr_ranges] follows.
  static constexpr std::size_t dma_ranges_offset = 16;
  vfio_region_dma_range* dma_ranges() {
    return detail::flex_array<vfio_region_dma_range>(this, dma_ranges_offset);
  }
  const vfio_region_dma_range* dma_ranges() const {
    return detail::flex_array<vfio_region_dma_range>(this, dma_ranges_offset);
  }
};
static_assert(sizeof(vfio_device_feature_dma_buf) == 16);
static_assert(alignof(vfio_device_feature_dma_buf) == 8);
static_assert(offsetof(vfio_device_feature_dma_buf, region_index) == 0);
static_assert(offsetof(vfio_device_feature_dma_buf, open_flags) == 4);
static_assert(offsetof(vfio_device_feature_dma_buf, flags) == 8);
static_assert(offsetof(vfio_device_feature_dma_buf, nr_ranges) == 12);

// ---------------------------------------------------------------------------
// Device cdev fd (/dev/vfio/devices/vfioN) with iommufd
// ---------------------------------------------------------------------------

// struct vfio_device_bind_iommufd (VFIO_DEVICE_BIND_IOMMUFD)
struct vfio_device_bind_iommufd {
  uint32_t argsz;
  uint32_t flags;
  int32_t iommufd;
  uint32_t out_devid;
  alignas(8) uint64_t token_uuid_ptr;  // if VFIO_DEVICE_BIND_FLAG_TOKEN
};
static_assert(sizeof(vfio_device_bind_iommufd) == 24);
static_assert(offsetof(vfio_device_bind_iommufd, argsz) == 0);
static_assert(offsetof(vfio_device_bind_iommufd, flags) == 4);
static_assert(offsetof(vfio_device_bind_iommufd, iommufd) == 8);
static_assert(offsetof(vfio_device_bind_iommufd, out_devid) == 12);
static_assert(offsetof(vfio_device_bind_iommufd, token_uuid_ptr) == 16);

constexpr uint32_t VFIO_DEVICE_BIND_FLAG_TOKEN = 1u << 0;

constexpr unsigned long VFIO_DEVICE_BIND_IOMMUFD = ioc::io(VFIO_TYPE, VFIO_BASE + 18);

// struct vfio_device_attach_iommufd_pt (VFIO_DEVICE_ATTACH_IOMMUFD_PT)
struct vfio_device_attach_iommufd_pt {
  uint32_t argsz;
  uint32_t flags;
  uint32_t pt_id;  // in: IOAS or HWPT id; out: the HWPT actually attached
  uint32_t pasid;  // if VFIO_DEVICE_ATTACH_PASID
};
static_assert(sizeof(vfio_device_attach_iommufd_pt) == 16);
static_assert(offsetof(vfio_device_attach_iommufd_pt, argsz) == 0);
static_assert(offsetof(vfio_device_attach_iommufd_pt, flags) == 4);
static_assert(offsetof(vfio_device_attach_iommufd_pt, pt_id) == 8);
static_assert(offsetof(vfio_device_attach_iommufd_pt, pasid) == 12);

constexpr uint32_t VFIO_DEVICE_ATTACH_PASID = 1u << 0;

constexpr unsigned long VFIO_DEVICE_ATTACH_IOMMUFD_PT = ioc::io(VFIO_TYPE, VFIO_BASE + 19);

// struct vfio_device_detach_iommufd_pt (VFIO_DEVICE_DETACH_IOMMUFD_PT)
struct vfio_device_detach_iommufd_pt {
  uint32_t argsz;
  uint32_t flags;
  uint32_t pasid;  // if VFIO_DEVICE_DETACH_PASID
};
static_assert(sizeof(vfio_device_detach_iommufd_pt) == 12);
static_assert(offsetof(vfio_device_detach_iommufd_pt, argsz) == 0);
static_assert(offsetof(vfio_device_detach_iommufd_pt, flags) == 4);
static_assert(offsetof(vfio_device_detach_iommufd_pt, pasid) == 8);

constexpr uint32_t VFIO_DEVICE_DETACH_PASID = 1u << 0;

constexpr unsigned long VFIO_DEVICE_DETACH_IOMMUFD_PT = ioc::io(VFIO_TYPE, VFIO_BASE + 20);

// ---------------------------------------------------------------------------
// Container fd, Type1 IOMMU: VFIO_IOMMU_GET_INFO
// ---------------------------------------------------------------------------

// struct vfio_iommu_type1_info
struct vfio_iommu_type1_info {
  uint32_t argsz;
  uint32_t flags;
  alignas(8) uint64_t iova_pgsizes;  // bitmap of supported page sizes
  uint32_t cap_offset;               // first capability, if VFIO_IOMMU_INFO_CAPS
  uint32_t pad;
};
static_assert(sizeof(vfio_iommu_type1_info) == 24);
static_assert(offsetof(vfio_iommu_type1_info, argsz) == 0);
static_assert(offsetof(vfio_iommu_type1_info, flags) == 4);
static_assert(offsetof(vfio_iommu_type1_info, iova_pgsizes) == 8);
static_assert(offsetof(vfio_iommu_type1_info, cap_offset) == 16);
static_assert(offsetof(vfio_iommu_type1_info, pad) == 20);

constexpr uint32_t VFIO_IOMMU_INFO_PGSIZES = 1u << 0;
constexpr uint32_t VFIO_IOMMU_INFO_CAPS = 1u << 1;

// Type1 capability ids (vfio_info_cap_header.id).
constexpr uint16_t VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
constexpr uint16_t VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;  // not used here
constexpr uint16_t VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

// struct vfio_iova_range (inclusive end)
struct vfio_iova_range {
  uint64_t start;
  uint64_t end;
};
static_assert(sizeof(vfio_iova_range) == 16);
static_assert(offsetof(vfio_iova_range, start) == 0);
static_assert(offsetof(vfio_iova_range, end) == 8);

// struct vfio_iommu_type1_info_cap_iova_range
struct alignas(vfio_iova_range) vfio_iommu_type1_info_cap_iova_range {
  vfio_info_cap_header header;
  uint32_t nr_iovas;
  uint32_t reserved;
  // vfio_iova_range iova_ranges[nr_iovas] follows.
  static constexpr std::size_t iova_ranges_offset = 16;
  vfio_iova_range* iova_ranges() { return detail::flex_array<vfio_iova_range>(this, iova_ranges_offset); }
  const vfio_iova_range* iova_ranges() const {
    return detail::flex_array<vfio_iova_range>(this, iova_ranges_offset);
  }
};
static_assert(sizeof(vfio_iommu_type1_info_cap_iova_range) == 16);
static_assert(alignof(vfio_iommu_type1_info_cap_iova_range) == 8);
static_assert(offsetof(vfio_iommu_type1_info_cap_iova_range, header) == 0);
static_assert(offsetof(vfio_iommu_type1_info_cap_iova_range, nr_iovas) == 8);
static_assert(offsetof(vfio_iommu_type1_info_cap_iova_range, reserved) == 12);

// struct vfio_iommu_type1_info_dma_avail (VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL)
struct vfio_iommu_type1_info_dma_avail {
  vfio_info_cap_header header;
  uint32_t avail;  // DMA mappings that may still be created
};
static_assert(sizeof(vfio_iommu_type1_info_dma_avail) == 12);
static_assert(offsetof(vfio_iommu_type1_info_dma_avail, header) == 0);
static_assert(offsetof(vfio_iommu_type1_info_dma_avail, avail) == 8);

// Same number as VFIO_DEVICE_GET_PCI_HOT_RESET_INFO (on a device fd).
constexpr unsigned long VFIO_IOMMU_GET_INFO = ioc::io(VFIO_TYPE, VFIO_BASE + 12);

// ---------------------------------------------------------------------------
// Container fd, Type1 IOMMU: VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA
// ---------------------------------------------------------------------------

// struct vfio_iommu_type1_dma_map
struct vfio_iommu_type1_dma_map {
  uint32_t argsz;
  uint32_t flags;
  uint64_t vaddr;  // process virtual address
  uint64_t iova;
  uint64_t size;  // bytes
};
static_assert(sizeof(vfio_iommu_type1_dma_map) == 32);
static_assert(offsetof(vfio_iommu_type1_dma_map, argsz) == 0);
static_assert(offsetof(vfio_iommu_type1_dma_map, flags) == 4);
static_assert(offsetof(vfio_iommu_type1_dma_map, vaddr) == 8);
static_assert(offsetof(vfio_iommu_type1_dma_map, iova) == 16);
static_assert(offsetof(vfio_iommu_type1_dma_map, size) == 24);

constexpr uint32_t VFIO_DMA_MAP_FLAG_READ = 1u << 0;   // device may read
constexpr uint32_t VFIO_DMA_MAP_FLAG_WRITE = 1u << 1;  // device may write
constexpr uint32_t VFIO_DMA_MAP_FLAG_VADDR = 1u << 2;

constexpr unsigned long VFIO_IOMMU_MAP_DMA = ioc::io(VFIO_TYPE, VFIO_BASE + 13);

// struct vfio_iommu_type1_dma_unmap
struct vfio_iommu_type1_dma_unmap {
  uint32_t argsz;
  uint32_t flags;
  uint64_t iova;
  uint64_t size;  // in: bytes to unmap; out: bytes unmapped
  // uint8_t data[] follows (struct vfio_bitmap with GET_DIRTY_BITMAP; unused).
  static constexpr std::size_t data_offset = 24;
  uint8_t* data() { return detail::flex_array<uint8_t>(this, data_offset); }
  const uint8_t* data() const { return detail::flex_array<uint8_t>(this, data_offset); }
};
static_assert(sizeof(vfio_iommu_type1_dma_unmap) == 24);
static_assert(offsetof(vfio_iommu_type1_dma_unmap, argsz) == 0);
static_assert(offsetof(vfio_iommu_type1_dma_unmap, flags) == 4);
static_assert(offsetof(vfio_iommu_type1_dma_unmap, iova) == 8);
static_assert(offsetof(vfio_iommu_type1_dma_unmap, size) == 16);

constexpr uint32_t VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1u << 0;
constexpr uint32_t VFIO_DMA_UNMAP_FLAG_ALL = 1u << 1;  // iova and size must be 0
constexpr uint32_t VFIO_DMA_UNMAP_FLAG_VADDR = 1u << 2;

constexpr unsigned long VFIO_IOMMU_UNMAP_DMA = ioc::io(VFIO_TYPE, VFIO_BASE + 14);

// Spot checks of the encoding against numbers computed by hand.
static_assert(VFIO_GET_API_VERSION == 0x3b64);
static_assert(VFIO_IOMMU_MAP_DMA == 0x3b71);
static_assert(ioc::iowr<vfio_region_info>('X', 1) == 0xc0205801);

}  // namespace nvfio::uapi

#endif  // NVFIO_UAPI_VFIO_H
