// A fragment of a phys_list as the native layer sees it: memory (user
// memory, or a file: memfd or dma-buf) at an offset, with a length; and the
// one loop both IOMMU backends use to link a list at consecutive IOVAs, one
// map call per run of fragments that continue each other in their source,
// undoing the runs already mapped when one fails.
#ifndef NVFIO_FRAGMENT_H
#define NVFIO_FRAGMENT_H

#include <cstdint>
#include <vector>

#include "memory.h"
#include "pin_table.h"

namespace nvfio {

struct Fragment {
  MappingRef memory;  // user memory; null for a bare file
  int file_fd = -1;   // >= 0: map this file (memfd, dma-buf) at `offset`
  uint64_t offset = 0;
  uint64_t length = 0;
};

// source: a NativeMemory or a NativeFile; asFile maps a memfd NativeMemory through its fd.
Fragment ReadFragment(Napi::Env env, const Napi::Value& source, uint64_t offset, uint64_t length,
                      bool as_file);
// { sources, ranges: BigUint64Array of (offset, length) pairs, asFile: Uint8Array }, one entry per
// fragment (one native call per fragment to read it); checks the total fits after `iova`.
std::vector<Fragment> ReadFragmentList(Napi::Env env, const Napi::Value& list, uint64_t iova,
                                       uint64_t* total);

// Records the memory of a list mapped at [iova, iova + total) as one pin; returns its id.
uint32_t PinList(PinTable& pins, uint32_t space, uint64_t iova, uint64_t total,
                 const std::vector<Fragment>& frags);

// Whether `next` continues `f` in the same source: the same memory (or the
// same bare file) mapped the same way, from the byte where `f` ends. Such
// fragments are one range of that source, so one map ioctl covers both.
inline bool Continues(const Fragment& f, const Fragment& next) {
  return next.memory == f.memory && next.file_fd == f.file_fd && next.offset == f.offset + f.length;
}

// Maps the fragments at consecutive IOVAs from `iova` with map(run, iova),
// one call per run of fragments that continue each other (consecutive pieces
// of one buffer, or of one memfd or dma-buf mapped as a file): the kernel
// makes one mapping, and one IOTLB sync, per call. If a call throws, calls
// unmap(iova, bytes) for the runs mapped before it and rethrows; a
// JavaScript error gets the failed run's fragment indexes as
// `fragmentFirst` and `fragmentLast`, for its message to name them.
template <typename MapFn, typename UnmapFn>
void MapConsecutive(const std::vector<Fragment>& frags, uint64_t iova, MapFn&& map, UnmapFn&& unmap) {
  uint64_t at = iova;
  for (size_t i = 0; i < frags.size();) {
    Fragment run = frags[i];
    size_t j = i + 1;
    for (; j < frags.size() && Continues(run, frags[j]); j++) run.length += frags[j].length;
    try {
      map(run, at);
    } catch (Napi::Error& e) {
      if (at > iova) unmap(iova, at - iova);
      Napi::Object error = e.Value();
      error.Set("fragmentFirst", static_cast<double>(i));
      error.Set("fragmentLast", static_cast<double>(j - 1));
      throw;
    } catch (...) {
      if (at > iova) unmap(iova, at - iova);
      throw;
    }
    at += run.length;
    i = j;
  }
}

}  // namespace nvfio

#endif
