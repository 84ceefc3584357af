// A fragment of a phys_list as the native layer sees it: memory (user
// memory, or a file: memfd or dma-buf) at an offset, with a length; and the
// one loop both IOMMU backends use to link a list at consecutive IOVAs,
// undoing the fragments already mapped when one fails.
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
Fragment ReadFragment(Napi::Env env, const Napi::Value& source, uint64_t offset, uint64_t length, bool as_file);
// { sources, ranges: BigUint64Array of (offset, length) pairs, asFile: Uint8Array }, one entry per
// fragment (one native call per fragment to read it); checks the total fits after `iova`.
std::vector<Fragment> ReadFragmentList(Napi::Env env, const Napi::Value& list, uint64_t iova, uint64_t* total);

// Records the memory of a list mapped at [iova, iova + total) as one pin; returns its id.
uint32_t PinList(PinTable& pins, uint32_t space, uint64_t iova, uint64_t total, const std::vector<Fragment>& frags);

// Maps each fragment at consecutive IOVAs from `iova` with map(fragment, iova);
// if one throws, calls unmap(iova, bytes) for those mapped before it and rethrows.
template <typename MapFn, typename UnmapFn>
void MapConsecutive(const std::vector<Fragment>& frags, uint64_t iova, MapFn&& map, UnmapFn&& unmap) {
  uint64_t at = iova;
  for (const Fragment& f : frags) {
    try {
      map(f, at);
    } catch (...) {
      if (at > iova) unmap(iova, at - iova);
      throw;
    }
    at += f.length;
  }
}

}  // namespace nvfio

#endif
