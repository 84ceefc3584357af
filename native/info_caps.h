// VFIO's INFO ioctls with capability chains (region info, type1 IOMMU
// info): call with a buffer, grow it to the argsz the kernel asks for, and
// walk the chain of vfio_info_cap_header entries.
#ifndef NVFIO_INFO_CAPS_H
#define NVFIO_INFO_CAPS_H

#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "uapi/vfio.h"

namespace nvfio {

// Runs `request` with a struct T (argsz first) prepared by `init`, growing the
// buffer until the capability chain fits. The buffer starts with the T.
template <typename T, typename Init>
std::vector<uint8_t> InfoIoctl(Napi::Env env, int fd, unsigned long request, const char* syscall, Init init) {
  std::vector<uint8_t> buf(sizeof(T));
  for (;;) {
    T* head = reinterpret_cast<T*>(buf.data());
    std::memset(buf.data(), 0, buf.size());
    head->argsz = static_cast<uint32_t>(buf.size());
    init(*head);
    if (Ioctl(fd, request, buf.data()) < 0) ThrowErrno(env, errno, syscall);
    if (head->argsz <= buf.size()) return buf;
    buf.resize(head->argsz);
  }
}

// Calls fn(header) for each capability from `first`, bounds-checked against the buffer.
template <typename Fn>
void ForEachCap(const std::vector<uint8_t>& buf, uint32_t first, Fn fn) {
  uint32_t off = first;
  for (int guard = 0; off != 0 && guard < 64; guard++) {
    if (off + sizeof(uapi::vfio_info_cap_header) > buf.size()) return;
    const auto* cap = reinterpret_cast<const uapi::vfio_info_cap_header*>(buf.data() + off);
    fn(*cap, buf.size() - off);
    off = cap->next;
  }
}

}  // namespace nvfio

#endif
