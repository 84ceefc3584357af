// One ioctl run off the event loop, on a thread of libuv's pool: for the
// calls that can block for long (a device reset: a function-level reset takes
// 100 ms or more; pinning a large buffer). The work runs on its own duplicate
// of the fd, so closing the owner meanwhile cannot hand the ioctl another
// file, and the kernel object stays until the work ends; the JavaScript owner
// is referenced until then too. The promise settles on the event loop:
// resolved by `done` (which may record what the call made), or rejected with
// the same fs-style error as the synchronous call.
#ifndef NVFIO_ASYNC_IOCTL_H
#define NVFIO_ASYNC_IOCTL_H

#include <functional>
#include <string>
#include <vector>

#include "common.h"

namespace nvfio {

// The settling step, on the event loop: given the ioctl's errno (0: it
// succeeded), returns the resolution value or throws (the promise rejects).
using IoctlDone = std::function<Napi::Value(Napi::Env env, int err)>;

// `request` on a duplicate of `fd` with a copy of `arg` (empty: an ioctl without argument).
Napi::Promise RunIoctlAsync(Napi::Env env, Napi::Object owner, int fd, unsigned long request,
                            std::vector<uint8_t> arg, IoctlDone done);

}  // namespace nvfio

#endif
