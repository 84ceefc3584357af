// Small pieces every native file uses: an owned file descriptor, ioctl that
// retries on EINTR, conversions of JavaScript numbers and bigints, and the
// per-environment data (worker threads each have their own).
#ifndef NVFIO_COMMON_H
#define NVFIO_COMMON_H

#include <napi.h>

#include <sys/ioctl.h>
#include <unistd.h>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>

namespace nvfio {

// An owned file descriptor, closed once.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.Release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) Reset(o.Release());
    return *this;
  }
  ~UniqueFd() { Reset(); }
  int Get() const { return fd_; }
  bool Valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// ioctl(2), retried on EINTR. Returns its result; errno is left set on -1.
inline int Ioctl(int fd, unsigned long request, void* arg) {
  int r;
  do {
    r = ::ioctl(fd, request, arg);
  } while (r < 0 && errno == EINTR);
  return r;
}

class MemoryTable;

// Per-environment state: the error class handed over by JavaScript, the
// constructors of the native classes (needed to unwrap arguments safely),
// and the handles of this environment's memory (shared: a NativeMemory
// finalized after the environment's data still finds its table).
struct AddonData {
  AddonData();
  std::shared_ptr<MemoryTable> memories;
  Napi::FunctionReference error_class;
  Napi::FunctionReference memory_ctor;
  Napi::FunctionReference file_ctor;
  Napi::FunctionReference iommufd_ctor;
  Napi::FunctionReference container_ctor;
  Napi::FunctionReference group_ctor;
  Napi::FunctionReference device_ctor;
  Napi::FunctionReference eventfd_watcher_ctor;
};

inline AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

// Throws a JavaScript error shaped like Node's fs errors: code, errno, syscall.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& syscall,
                             const std::string& detail = "");
[[noreturn]] void ThrowType(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& message);
// Using an object after close().
[[noreturn]] void ThrowClosed(Napi::Env env, const char* what);

// A non-negative integer from a bigint or a safe-integer number.
uint64_t ToU64(const Napi::Value& v, const char* name);
uint32_t ToU32(const Napi::Value& v, const char* name);
Napi::BigInt FromU64(Napi::Env env, uint64_t v);

// The native object behind `v` if it is an instance of the class whose
// constructor is `ctor`; a TypeError otherwise (never a blind unwrap).
template <typename T>
T* UnwrapAs(const Napi::Value& v, Napi::FunctionReference& ctor, const char* name) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor.Value())) {
    ThrowType(v.Env(), std::string(name) + " must be a " + T::kClassName);
  }
  return Napi::ObjectWrap<T>::Unwrap(v.As<Napi::Object>());
}

}  // namespace nvfio

#endif
