// Drift check: node-vfio's uAPI definitions (native/uapi/*.h) against the
// kernel's own headers.
//
//   g++ -std=c++17 -isystem <headers_install dir>/include abi_check.cc
//
// Prints one line per mismatch, then "abi: N checks, M mismatches"; exits 1
// if M > 0. With -DNVFIO_ABI_SELFTEST_BREAK one deliberately wrong value is
// compared as well, to prove that a mismatch is caught and named.
//
// Our names live in namespace nvfio::uapi, but most kernel names are macros,
// which would rewrite `nvfio::uapi::VFIO_IOMMU_MAP_DMA` into nonsense once
// <linux/vfio.h> is seen. So our constants are read first, into variables
// whose names are built with ## (never macro-expanded), and the kernel
// headers are included afterwards. Struct and field names are not macros and
// are compared directly.

#include "../../native/uapi/iommufd.h"
#include "../../native/uapi/vfio.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <type_traits>
#include <utility>

// Every constant and ioctl number that native/uapi defines.
#define NVFIO_ABI_CONSTANTS(X)            \
  /* vfio: API version, extensions */     \
  X(VFIO_API_VERSION)                     \
  X(VFIO_TYPE1_IOMMU)                     \
  X(VFIO_SPAPR_TCE_IOMMU)                 \
  X(VFIO_TYPE1v2_IOMMU)                   \
  X(VFIO_DMA_CC_IOMMU)                    \
  X(VFIO_EEH)                             \
  X(VFIO_SPAPR_TCE_v2_IOMMU)              \
  X(VFIO_NOIOMMU_IOMMU)                   \
  X(VFIO_UNMAP_ALL)                       \
  X(VFIO_UPDATE_VADDR)                    \
  X(VFIO_TYPE)                            \
  X(VFIO_BASE)                            \
  /* vfio: ioctls */                      \
  X(VFIO_GET_API_VERSION)                 \
  X(VFIO_CHECK_EXTENSION)                 \
  X(VFIO_SET_IOMMU)                       \
  X(VFIO_GROUP_GET_STATUS)                \
  X(VFIO_GROUP_SET_CONTAINER)             \
  X(VFIO_GROUP_UNSET_CONTAINER)           \
  X(VFIO_GROUP_GET_DEVICE_FD)             \
  X(VFIO_DEVICE_GET_INFO)                 \
  X(VFIO_DEVICE_GET_REGION_INFO)          \
  X(VFIO_DEVICE_GET_IRQ_INFO)             \
  X(VFIO_DEVICE_SET_IRQS)                 \
  X(VFIO_DEVICE_RESET)                    \
  X(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO)   \
  X(VFIO_DEVICE_PCI_HOT_RESET)            \
  X(VFIO_DEVICE_FEATURE)                  \
  X(VFIO_DEVICE_BIND_IOMMUFD)             \
  X(VFIO_DEVICE_ATTACH_IOMMUFD_PT)        \
  X(VFIO_DEVICE_DETACH_IOMMUFD_PT)        \
  X(VFIO_IOMMU_GET_INFO)                  \
  X(VFIO_IOMMU_MAP_DMA)                   \
  X(VFIO_IOMMU_UNMAP_DMA)                 \
  /* vfio: group */                       \
  X(VFIO_GROUP_FLAGS_VIABLE)              \
  X(VFIO_GROUP_FLAGS_CONTAINER_SET)       \
  /* vfio: device info */                 \
  X(VFIO_DEVICE_FLAGS_RESET)              \
  X(VFIO_DEVICE_FLAGS_PCI)                \
  X(VFIO_DEVICE_FLAGS_PLATFORM)           \
  X(VFIO_DEVICE_FLAGS_AMBA)               \
  X(VFIO_DEVICE_FLAGS_CCW)                \
  X(VFIO_DEVICE_FLAGS_AP)                 \
  X(VFIO_DEVICE_FLAGS_FSL_MC)             \
  X(VFIO_DEVICE_FLAGS_CAPS)               \
  X(VFIO_DEVICE_FLAGS_CDX)                \
  /* vfio: regions */                     \
  X(VFIO_REGION_INFO_FLAG_READ)           \
  X(VFIO_REGION_INFO_FLAG_WRITE)          \
  X(VFIO_REGION_INFO_FLAG_MMAP)           \
  X(VFIO_REGION_INFO_FLAG_CAPS)           \
  X(VFIO_REGION_INFO_CAP_SPARSE_MMAP)     \
  X(VFIO_REGION_INFO_CAP_TYPE)            \
  X(VFIO_REGION_INFO_CAP_MSIX_MAPPABLE)   \
  X(VFIO_REGION_TYPE_PCI_VENDOR_TYPE)     \
  X(VFIO_REGION_TYPE_PCI_VENDOR_MASK)     \
  X(VFIO_PCI_BAR0_REGION_INDEX)           \
  X(VFIO_PCI_BAR1_REGION_INDEX)           \
  X(VFIO_PCI_BAR2_REGION_INDEX)           \
  X(VFIO_PCI_BAR3_REGION_INDEX)           \
  X(VFIO_PCI_BAR4_REGION_INDEX)           \
  X(VFIO_PCI_BAR5_REGION_INDEX)           \
  X(VFIO_PCI_ROM_REGION_INDEX)            \
  X(VFIO_PCI_CONFIG_REGION_INDEX)         \
  X(VFIO_PCI_VGA_REGION_INDEX)            \
  X(VFIO_PCI_NUM_REGIONS)                 \
  /* vfio: IRQs */                        \
  X(VFIO_IRQ_INFO_EVENTFD)                \
  X(VFIO_IRQ_INFO_MASKABLE)               \
  X(VFIO_IRQ_INFO_AUTOMASKED)             \
  X(VFIO_IRQ_INFO_NORESIZE)               \
  X(VFIO_IRQ_SET_DATA_NONE)               \
  X(VFIO_IRQ_SET_DATA_BOOL)               \
  X(VFIO_IRQ_SET_DATA_EVENTFD)            \
  X(VFIO_IRQ_SET_ACTION_MASK)             \
  X(VFIO_IRQ_SET_ACTION_UNMASK)           \
  X(VFIO_IRQ_SET_ACTION_TRIGGER)          \
  X(VFIO_IRQ_SET_DATA_TYPE_MASK)          \
  X(VFIO_IRQ_SET_ACTION_TYPE_MASK)        \
  X(VFIO_PCI_INTX_IRQ_INDEX)              \
  X(VFIO_PCI_MSI_IRQ_INDEX)               \
  X(VFIO_PCI_MSIX_IRQ_INDEX)              \
  X(VFIO_PCI_ERR_IRQ_INDEX)               \
  X(VFIO_PCI_REQ_IRQ_INDEX)               \
  X(VFIO_PCI_NUM_IRQS)                    \
  /* vfio: hot reset */                   \
  X(VFIO_PCI_DEVID_OWNED)                 \
  X(VFIO_PCI_DEVID_NOT_OWNED)             \
  X(VFIO_PCI_HOT_RESET_FLAG_DEV_ID)       \
  X(VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED) \
  /* vfio: device features */             \
  X(VFIO_DEVICE_FEATURE_MASK)             \
  X(VFIO_DEVICE_FEATURE_GET)              \
  X(VFIO_DEVICE_FEATURE_SET)              \
  X(VFIO_DEVICE_FEATURE_PROBE)            \
  X(VFIO_DEVICE_FEATURE_PCI_VF_TOKEN)     \
  X(VFIO_DEVICE_FEATURE_BUS_MASTER)       \
  X(VFIO_DEVICE_FEATURE_CLEAR_MASTER)     \
  X(VFIO_DEVICE_FEATURE_SET_MASTER)       \
  X(VFIO_DEVICE_FEATURE_DMA_BUF)          \
  /* vfio: cdev + iommufd */              \
  X(VFIO_DEVICE_BIND_FLAG_TOKEN)          \
  X(VFIO_DEVICE_ATTACH_PASID)             \
  X(VFIO_DEVICE_DETACH_PASID)             \
  /* vfio: type1 IOMMU */                 \
  X(VFIO_IOMMU_INFO_PGSIZES)              \
  X(VFIO_IOMMU_INFO_CAPS)                 \
  X(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) \
  X(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION)  \
  X(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL)      \
  X(VFIO_DMA_MAP_FLAG_READ)               \
  X(VFIO_DMA_MAP_FLAG_WRITE)              \
  X(VFIO_DMA_MAP_FLAG_VADDR)              \
  X(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) \
  X(VFIO_DMA_UNMAP_FLAG_ALL)              \
  X(VFIO_DMA_UNMAP_FLAG_VADDR)            \
  /* iommufd: command numbers */          \
  X(IOMMUFD_TYPE)                         \
  X(IOMMUFD_CMD_BASE)                     \
  X(IOMMUFD_CMD_DESTROY)                  \
  X(IOMMUFD_CMD_IOAS_ALLOC)               \
  X(IOMMUFD_CMD_IOAS_ALLOW_IOVAS)         \
  X(IOMMUFD_CMD_IOAS_COPY)                \
  X(IOMMUFD_CMD_IOAS_IOVA_RANGES)         \
  X(IOMMUFD_CMD_IOAS_MAP)                 \
  X(IOMMUFD_CMD_IOAS_UNMAP)               \
  X(IOMMUFD_CMD_OPTION)                   \
  X(IOMMUFD_CMD_VFIO_IOAS)                \
  X(IOMMUFD_CMD_HWPT_ALLOC)               \
  X(IOMMUFD_CMD_GET_HW_INFO)              \
  X(IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING)  \
  X(IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP)    \
  X(IOMMUFD_CMD_HWPT_INVALIDATE)          \
  X(IOMMUFD_CMD_FAULT_QUEUE_ALLOC)        \
  X(IOMMUFD_CMD_IOAS_MAP_FILE)            \
  X(IOMMUFD_CMD_VIOMMU_ALLOC)             \
  X(IOMMUFD_CMD_VDEVICE_ALLOC)            \
  X(IOMMUFD_CMD_IOAS_CHANGE_PROCESS)      \
  X(IOMMUFD_CMD_VEVENTQ_ALLOC)            \
  X(IOMMUFD_CMD_HW_QUEUE_ALLOC)           \
  /* iommufd: ioctls */                   \
  X(IOMMU_DESTROY)                        \
  X(IOMMU_IOAS_ALLOC)                     \
  X(IOMMU_IOAS_IOVA_RANGES)               \
  X(IOMMU_IOAS_ALLOW_IOVAS)               \
  X(IOMMU_IOAS_COPY)                      \
  X(IOMMU_IOAS_UNMAP)                     \
  X(IOMMU_OPTION)                         \
  X(IOMMU_IOAS_MAP)                       \
  X(IOMMU_IOAS_MAP_FILE)                  \
  X(IOMMU_GET_HW_INFO)                    \
  /* iommufd: flags and values */         \
  X(IOMMU_IOAS_MAP_FIXED_IOVA)            \
  X(IOMMU_IOAS_MAP_WRITEABLE)             \
  X(IOMMU_IOAS_MAP_READABLE)              \
  X(IOMMU_OPTION_RLIMIT_MODE)             \
  X(IOMMU_OPTION_HUGE_PAGES)              \
  X(IOMMU_OPTION_OP_SET)                  \
  X(IOMMU_OPTION_OP_GET)                  \
  X(IOMMU_HW_INFO_TYPE_NONE)              \
  X(IOMMU_HW_INFO_TYPE_DEFAULT)           \
  X(IOMMU_HW_INFO_TYPE_INTEL_VTD)         \
  X(IOMMU_HW_INFO_TYPE_ARM_SMMUV3)        \
  X(IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV)    \
  X(IOMMU_HW_INFO_TYPE_AMD)               \
  X(IOMMU_HW_CAP_DIRTY_TRACKING)          \
  X(IOMMU_HW_CAP_PCI_PASID_EXEC)          \
  X(IOMMU_HW_CAP_PCI_PASID_PRIV)          \
  X(IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED)   \
  X(IOMMU_HW_INFO_FLAG_INPUT_TYPE)

// Phase 1, before any kernel header: ours::NAME_v holds nvfio::uapi::NAME.
#define NVFIO_CAPTURE(name) \
  constexpr std::remove_cv_t<decltype(nvfio::uapi::name)> name##_v = nvfio::uapi::name;
namespace ours {
NVFIO_ABI_CONSTANTS(NVFIO_CAPTURE)
}  // namespace ours
#undef NVFIO_CAPTURE

// Phase 2: the kernel's definitions.
#include <linux/iommufd.h>
#include <linux/vfio.h>

#if !defined(VFIO_DEVICE_FEATURE_DMA_BUF) || !defined(IOMMU_IOAS_MAP_FILE)
#error "kernel uAPI headers too old or not found: compile with -isystem <headers_install dir>/include"
#endif

namespace {

unsigned checks = 0;
unsigned mismatches = 0;

// Kernel constants are int/unsigned macros, enumerators or char literals;
// ours have the type of the field they go into. They match if the kernel's
// value converts to our type and back without change.
template <class Ours, class Kernel>
void check_value(const char* name, Ours ours, Kernel kernel_raw) {
  ++checks;
  const auto kernel = +kernel_raw;  // promote enumerators and chars
  using K = decltype(kernel);
  const Ours converted = static_cast<Ours>(kernel);
  if (converted == ours && static_cast<K>(converted) == kernel) return;
  ++mismatches;
  std::printf("mismatch: %s: ours %#llx, kernel %#llx\n", name, static_cast<unsigned long long>(ours),
              static_cast<unsigned long long>(kernel));
}

void check_number(const char* what, const char* name, std::size_t ours, std::size_t kernel) {
  ++checks;
  if (ours == kernel) return;
  ++mismatches;
  std::printf("mismatch: %s %s: ours %zu, kernel %zu\n", what, name, ours, kernel);
}

void check_bool(const char* what, const char* name, bool ours, bool kernel) {
  ++checks;
  if (ours == kernel) return;
  ++mismatches;
  std::printf("mismatch: %s %s: ours %d, kernel %d\n", what, name, ours, kernel);
}

template <class T>
constexpr bool is_signed_field = std::is_signed_v<std::remove_reference_t<T>>;

}  // namespace

// sizeof and alignof of nvfio::uapi::s against the kernel's struct s.
#define STRUCT(s)                                                  \
  check_number("sizeof", #s, sizeof(nvfio::uapi::s), sizeof(::s)); \
  check_number("alignof", #s, alignof(nvfio::uapi::s), alignof(::s));

// Offset, size and signedness of one field (ours_f is the kernel's kernel_f).
#define FIELD_AS(s, ours_f, kernel_f)                                                                    \
  check_number("offsetof", #s "." #kernel_f, offsetof(nvfio::uapi::s, ours_f), offsetof(::s, kernel_f)); \
  check_number("sizeof", #s "." #kernel_f, sizeof(std::declval<nvfio::uapi::s&>().ours_f),               \
               sizeof(std::declval<::s&>().kernel_f));                                                   \
  check_bool("signedness", #s "." #kernel_f,                                                             \
             is_signed_field<decltype(std::declval<nvfio::uapi::s&>().ours_f)>,                          \
             is_signed_field<decltype(std::declval<::s&>().kernel_f)>);
#define FIELD(s, f) FIELD_AS(s, f, f)

// A flexible array member: our f##_offset and f() accessor against f[].
#define FLEX(s, f)                                                                             \
  check_number("offsetof", #s "." #f "[]", nvfio::uapi::s::f##_offset, offsetof(::s, f));      \
  check_number("element sizeof", #s "." #f "[]", sizeof(*std::declval<nvfio::uapi::s&>().f()), \
               sizeof(std::declval<::s&>().f[0]));                                             \
  check_bool("element signedness", #s "." #f "[]",                                             \
             is_signed_field<decltype(*std::declval<nvfio::uapi::s&>().f())>,                  \
             is_signed_field<decltype(std::declval<::s&>().f[0])>);

static void check_vfio_structs() {
  STRUCT(vfio_info_cap_header)
  FIELD(vfio_info_cap_header, id)
  FIELD(vfio_info_cap_header, version)
  FIELD(vfio_info_cap_header, next)

  STRUCT(vfio_group_status)
  FIELD(vfio_group_status, argsz)
  FIELD(vfio_group_status, flags)

  STRUCT(vfio_device_info)
  FIELD(vfio_device_info, argsz)
  FIELD(vfio_device_info, flags)
  FIELD(vfio_device_info, num_regions)
  FIELD(vfio_device_info, num_irqs)
  FIELD(vfio_device_info, cap_offset)
  FIELD(vfio_device_info, pad)

  STRUCT(vfio_region_info)
  FIELD(vfio_region_info, argsz)
  FIELD(vfio_region_info, flags)
  FIELD(vfio_region_info, index)
  FIELD(vfio_region_info, cap_offset)
  FIELD(vfio_region_info, size)
  FIELD(vfio_region_info, offset)

  STRUCT(vfio_region_sparse_mmap_area)
  FIELD(vfio_region_sparse_mmap_area, offset)
  FIELD(vfio_region_sparse_mmap_area, size)

  STRUCT(vfio_region_info_cap_sparse_mmap)
  FIELD(vfio_region_info_cap_sparse_mmap, header)
  FIELD(vfio_region_info_cap_sparse_mmap, nr_areas)
  FIELD(vfio_region_info_cap_sparse_mmap, reserved)
  FLEX(vfio_region_info_cap_sparse_mmap, areas)

  STRUCT(vfio_region_info_cap_type)
  FIELD(vfio_region_info_cap_type, header)
  FIELD(vfio_region_info_cap_type, type)
  FIELD(vfio_region_info_cap_type, subtype)

  STRUCT(vfio_irq_info)
  FIELD(vfio_irq_info, argsz)
  FIELD(vfio_irq_info, flags)
  FIELD(vfio_irq_info, index)
  FIELD(vfio_irq_info, count)

  STRUCT(vfio_irq_set)
  FIELD(vfio_irq_set, argsz)
  FIELD(vfio_irq_set, flags)
  FIELD(vfio_irq_set, index)
  FIELD(vfio_irq_set, start)
  FIELD(vfio_irq_set, count)
  FLEX(vfio_irq_set, data)

  STRUCT(vfio_pci_dependent_device)
  FIELD(vfio_pci_dependent_device, group_id)
  FIELD(vfio_pci_dependent_device, devid)
  FIELD(vfio_pci_dependent_device, segment)
  FIELD(vfio_pci_dependent_device, bus)
  FIELD(vfio_pci_dependent_device, devfn)

  STRUCT(vfio_pci_hot_reset_info)
  FIELD(vfio_pci_hot_reset_info, argsz)
  FIELD(vfio_pci_hot_reset_info, flags)
  FIELD(vfio_pci_hot_reset_info, count)
  FLEX(vfio_pci_hot_reset_info, devices)

  STRUCT(vfio_pci_hot_reset)
  FIELD(vfio_pci_hot_reset, argsz)
  FIELD(vfio_pci_hot_reset, flags)
  FIELD(vfio_pci_hot_reset, count)
  FLEX(vfio_pci_hot_reset, group_fds)

  STRUCT(vfio_device_feature)
  FIELD(vfio_device_feature, argsz)
  FIELD(vfio_device_feature, flags)
  FLEX(vfio_device_feature, data)

  STRUCT(vfio_device_feature_bus_master)
  FIELD(vfio_device_feature_bus_master, op)

  STRUCT(vfio_region_dma_range)
  FIELD(vfio_region_dma_range, offset)
  FIELD(vfio_region_dma_range, length)

  STRUCT(vfio_device_feature_dma_buf)
  FIELD(vfio_device_feature_dma_buf, region_index)
  FIELD(vfio_device_feature_dma_buf, open_flags)
  FIELD(vfio_device_feature_dma_buf, flags)
  FIELD(vfio_device_feature_dma_buf, nr_ranges)
  FLEX(vfio_device_feature_dma_buf, dma_ranges)

  STRUCT(vfio_device_bind_iommufd)
  FIELD(vfio_device_bind_iommufd, argsz)
  FIELD(vfio_device_bind_iommufd, flags)
  FIELD(vfio_device_bind_iommufd, iommufd)
  FIELD(vfio_device_bind_iommufd, out_devid)
  FIELD(vfio_device_bind_iommufd, token_uuid_ptr)

  STRUCT(vfio_device_attach_iommufd_pt)
  FIELD(vfio_device_attach_iommufd_pt, argsz)
  FIELD(vfio_device_attach_iommufd_pt, flags)
  FIELD(vfio_device_attach_iommufd_pt, pt_id)
  FIELD(vfio_device_attach_iommufd_pt, pasid)

  STRUCT(vfio_device_detach_iommufd_pt)
  FIELD(vfio_device_detach_iommufd_pt, argsz)
  FIELD(vfio_device_detach_iommufd_pt, flags)
  FIELD(vfio_device_detach_iommufd_pt, pasid)

  STRUCT(vfio_iommu_type1_info)
  FIELD(vfio_iommu_type1_info, argsz)
  FIELD(vfio_iommu_type1_info, flags)
  FIELD(vfio_iommu_type1_info, iova_pgsizes)
  FIELD(vfio_iommu_type1_info, cap_offset)
  FIELD(vfio_iommu_type1_info, pad)

  STRUCT(vfio_iova_range)
  FIELD(vfio_iova_range, start)
  FIELD(vfio_iova_range, end)

  STRUCT(vfio_iommu_type1_info_cap_iova_range)
  FIELD(vfio_iommu_type1_info_cap_iova_range, header)
  FIELD(vfio_iommu_type1_info_cap_iova_range, nr_iovas)
  FIELD(vfio_iommu_type1_info_cap_iova_range, reserved)
  FLEX(vfio_iommu_type1_info_cap_iova_range, iova_ranges)

  STRUCT(vfio_iommu_type1_info_dma_avail)
  FIELD(vfio_iommu_type1_info_dma_avail, header)
  FIELD(vfio_iommu_type1_info_dma_avail, avail)

  STRUCT(vfio_iommu_type1_dma_map)
  FIELD(vfio_iommu_type1_dma_map, argsz)
  FIELD(vfio_iommu_type1_dma_map, flags)
  FIELD(vfio_iommu_type1_dma_map, vaddr)
  FIELD(vfio_iommu_type1_dma_map, iova)
  FIELD(vfio_iommu_type1_dma_map, size)

  STRUCT(vfio_iommu_type1_dma_unmap)
  FIELD(vfio_iommu_type1_dma_unmap, argsz)
  FIELD(vfio_iommu_type1_dma_unmap, flags)
  FIELD(vfio_iommu_type1_dma_unmap, iova)
  FIELD(vfio_iommu_type1_dma_unmap, size)
  FLEX(vfio_iommu_type1_dma_unmap, data)
}

static void check_iommufd_structs() {
  STRUCT(iommu_destroy)
  FIELD(iommu_destroy, size)
  FIELD(iommu_destroy, id)

  STRUCT(iommu_ioas_alloc)
  FIELD(iommu_ioas_alloc, size)
  FIELD(iommu_ioas_alloc, flags)
  FIELD(iommu_ioas_alloc, out_ioas_id)

  STRUCT(iommu_iova_range)
  FIELD(iommu_iova_range, start)
  FIELD(iommu_iova_range, last)

  STRUCT(iommu_ioas_iova_ranges)
  FIELD(iommu_ioas_iova_ranges, size)
  FIELD(iommu_ioas_iova_ranges, ioas_id)
  FIELD(iommu_ioas_iova_ranges, num_iovas)
  FIELD_AS(iommu_ioas_iova_ranges, reserved, __reserved)
  FIELD(iommu_ioas_iova_ranges, allowed_iovas)
  FIELD(iommu_ioas_iova_ranges, out_iova_alignment)

  STRUCT(iommu_ioas_allow_iovas)
  FIELD(iommu_ioas_allow_iovas, size)
  FIELD(iommu_ioas_allow_iovas, ioas_id)
  FIELD(iommu_ioas_allow_iovas, num_iovas)
  FIELD_AS(iommu_ioas_allow_iovas, reserved, __reserved)
  FIELD(iommu_ioas_allow_iovas, allowed_iovas)

  STRUCT(iommu_ioas_map)
  FIELD(iommu_ioas_map, size)
  FIELD(iommu_ioas_map, flags)
  FIELD(iommu_ioas_map, ioas_id)
  FIELD_AS(iommu_ioas_map, reserved, __reserved)
  FIELD(iommu_ioas_map, user_va)
  FIELD(iommu_ioas_map, length)
  FIELD(iommu_ioas_map, iova)

  STRUCT(iommu_ioas_map_file)
  FIELD(iommu_ioas_map_file, size)
  FIELD(iommu_ioas_map_file, flags)
  FIELD(iommu_ioas_map_file, ioas_id)
  FIELD(iommu_ioas_map_file, fd)
  FIELD(iommu_ioas_map_file, start)
  FIELD(iommu_ioas_map_file, length)
  FIELD(iommu_ioas_map_file, iova)

  STRUCT(iommu_ioas_copy)
  FIELD(iommu_ioas_copy, size)
  FIELD(iommu_ioas_copy, flags)
  FIELD(iommu_ioas_copy, dst_ioas_id)
  FIELD(iommu_ioas_copy, src_ioas_id)
  FIELD(iommu_ioas_copy, length)
  FIELD(iommu_ioas_copy, dst_iova)
  FIELD(iommu_ioas_copy, src_iova)

  STRUCT(iommu_ioas_unmap)
  FIELD(iommu_ioas_unmap, size)
  FIELD(iommu_ioas_unmap, ioas_id)
  FIELD(iommu_ioas_unmap, iova)
  FIELD(iommu_ioas_unmap, length)

  STRUCT(iommu_option)
  FIELD(iommu_option, size)
  FIELD(iommu_option, option_id)
  FIELD(iommu_option, op)
  FIELD_AS(iommu_option, reserved, __reserved)
  FIELD(iommu_option, object_id)
  FIELD(iommu_option, val64)

  STRUCT(iommu_hw_info)
  FIELD(iommu_hw_info, size)
  FIELD(iommu_hw_info, flags)
  FIELD(iommu_hw_info, dev_id)
  FIELD(iommu_hw_info, data_len)
  FIELD(iommu_hw_info, data_uptr)
  FIELD(iommu_hw_info, in_data_type)
  FIELD(iommu_hw_info, out_data_type)
  FIELD(iommu_hw_info, out_max_pasid_log2)
  FIELD_AS(iommu_hw_info, reserved, __reserved)
  FIELD(iommu_hw_info, out_capabilities)
}

int main() {
#define NVFIO_COMPARE(name) check_value(#name, ours::name##_v, (name));
  NVFIO_ABI_CONSTANTS(NVFIO_COMPARE)
#undef NVFIO_COMPARE

#ifdef NVFIO_ABI_SELFTEST_BREAK
  // Deliberately wrong, to prove that drift is reported and named.
  check_value("VFIO_IOMMU_MAP_DMA", ours::VFIO_IOMMU_MAP_DMA_v + 1, VFIO_IOMMU_MAP_DMA);
#endif

  check_vfio_structs();
  check_iommufd_structs();

  std::printf("abi: %u checks, %u mismatches\n", checks, mismatches);
  return mismatches == 0 ? 0 : 1;
}
