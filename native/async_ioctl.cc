#include "async_ioctl.h"

#include <fcntl.h>

namespace nvfio {

namespace {

class IoctlWorker : public Napi::AsyncWorker {
 public:
  IoctlWorker(Napi::Env env, Napi::Object owner, UniqueFd fd, unsigned long request, std::vector<uint8_t> arg,
              IoctlDone done)
      : Napi::AsyncWorker(env, "nvfio:ioctl"),
        deferred_(Napi::Promise::Deferred::New(env)),
        owner_(Napi::Persistent(owner)),
        fd_(std::move(fd)),
        request_(request),
        arg_(std::move(arg)),
        done_(std::move(done)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  // On a pool thread: no JavaScript here.
  void Execute() override {
    if (Ioctl(fd_.Get(), request_, arg_.empty() ? nullptr : arg_.data()) < 0) err_ = errno;
    fd_.Reset();  // the kernel object may go now, if its owner closed meanwhile
  }

  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(done_(env, err_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
    owner_.Reset();
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference owner_;
  UniqueFd fd_;
  unsigned long request_;
  std::vector<uint8_t> arg_;
  IoctlDone done_;
  int err_ = 0;
};

}  // namespace

Napi::Promise RunIoctlAsync(Napi::Env env, Napi::Object owner, int fd, unsigned long request,
                            std::vector<uint8_t> arg, IoctlDone done) {
  UniqueFd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!dup.Valid()) ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC)", "(an ioctl off the event loop)");
  auto* worker = new IoctlWorker(env, owner, std::move(dup), request, std::move(arg), std::move(done));
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // the worker deletes itself after OnOK
  return promise;
}

}  // namespace nvfio
