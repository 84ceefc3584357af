#include "eventfd_watch.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstddef>

#include "device.h"
#include "file.h"
#include "uapi/vfio.h"

namespace nvfio {

namespace u = uapi;

namespace {

// The error ThrowErrno would throw, as a value to hand to a callback.
Napi::Value ErrnoValue(Napi::Env env, int err, const char* syscall) {
  try {
    ThrowErrno(env, err, syscall, "(eventfd)");
  } catch (const Napi::Error& e) {
    return e.Value();
  }
}

}  // namespace

Napi::Function EventfdWatcher::Init(Napi::Env env) {
  return DefineClass(env, kClassName,
                     {
                         InstanceMethod<&EventfdWatcher::Close>("close"),
                         InstanceMethod<&EventfdWatcher::RefLoop>("ref"),
                         InstanceMethod<&EventfdWatcher::UnrefLoop>("unref"),
                         InstanceAccessor<&EventfdWatcher::ActiveGetter>("active"),
                         StaticMethod<&EventfdWatcher::LoopbackTrigger>("loopbackTrigger"),
                     });
}

// new EventfdWatcher(eventfd, onCount, onError?): watches from now on.
EventfdWatcher::EventfdWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EventfdWatcher>(info) {
  Napi::Env env = info.Env();
  File* file = UnwrapAs<File>(info[0], Data(env).file_ctor, "eventfd");
  if (!info[1].IsFunction()) ThrowType(env, "onCount must be a function");
  if (!info[2].IsUndefined() && !info[2].IsFunction()) ThrowType(env, "onError must be a function");
  fd_.Reset(::fcntl(file->Fd(env), F_DUPFD_CLOEXEC, 0));
  if (!fd_.Valid()) ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC)", "(eventfd)");
  int fl = ::fcntl(fd_.Get(), F_GETFL);
  if (fl < 0) ThrowErrno(env, errno, "fcntl(F_GETFL)", "(eventfd)");
  if ((fl & O_NONBLOCK) == 0) ThrowType(env, "eventfd must be non-blocking (NativeFile.eventfd())");

  uv_loop_s* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    throw Napi::Error::New(env, "no libuv loop for this environment");
  }
  auto poll = std::make_unique<uv_poll_t>();
  int r = uv_poll_init(loop, poll.get(), fd_.Get());
  if (r < 0) ThrowErrno(env, -r, "uv_poll_init", "(eventfd)");
  r = uv_poll_start(poll.get(), UV_READABLE, OnReadable);
  if (r < 0) {
    poll->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll.release()), OnHandleClosed);
    ThrowErrno(env, -r, "uv_poll_start", "(eventfd)");
  }
  poll->data = this;
  poll_ = poll.release();
  if (napi_add_async_cleanup_hook(env, OnEnvExit, this, &exit_hook_) != napi_ok) exit_hook_ = nullptr;

  file_ = Napi::Persistent(info[0].As<Napi::Object>());
  on_count_ = Napi::Persistent(info[1].As<Napi::Function>());
  if (info[2].IsFunction()) on_error_ = Napi::Persistent(info[2].As<Napi::Function>());
  async_ = std::make_unique<Napi::AsyncContext>(env, kClassName, Value());
  Ref();  // work in flight holds its owner
  self_held_ = true;
}

EventfdWatcher::~EventfdWatcher() { Stop(StopReason::kFinalize); }

void EventfdWatcher::OnReadable(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<EventfdWatcher*>(handle->data);
  if (self != nullptr) self->Deliver(status);
}

// Frees the handle once libuv is done with it; when the environment's exit
// asked for the stop, tells it that this hook has finished.
void EventfdWatcher::OnHandleClosed(uv_handle_t* handle) {
  auto hook = static_cast<napi_async_cleanup_hook_handle>(handle->data);
  delete reinterpret_cast<uv_poll_t*>(handle);
  if (hook != nullptr) napi_remove_async_cleanup_hook(hook);
}

void EventfdWatcher::OnEnvExit(napi_async_cleanup_hook_handle hook, void* arg) {
  static_cast<EventfdWatcher*>(arg)->Stop(StopReason::kEnvExit);
}

// Reads the counter once (which resets it; the eventfd is non-blocking) and
// hands it on. A read that finds nothing (EAGAIN) is not an event; an error
// stops the watch and goes to onError.
void EventfdWatcher::Deliver(int status) {
  if (status < 0) return DeliverError(-status, "uv_poll");  // libuv reported the error
  uint64_t count = 0;
  ssize_t n = ::read(fd_.Get(), &count, sizeof(count));
  if (n == static_cast<ssize_t>(sizeof(count))) return DeliverCount(count);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  DeliverError(n < 0 ? errno : EIO, "read");
}

// The hot path: onCount(count) through MakeCallback, in raw Node-API calls
// (no wrapper objects, nothing allocated by this file; a count below 2^31
// is a small integer to V8). A listener's exception is an uncaught exception.
void EventfdWatcher::DeliverCount(uint64_t count) {
  napi_env env = Env();
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value recv, fn, argv[1];
  if (napi_get_reference_value(env, *this, &recv) == napi_ok &&
      napi_get_reference_value(env, on_count_, &fn) == napi_ok &&
      napi_create_double(env, static_cast<double>(count), &argv[0]) == napi_ok &&
      napi_make_callback(env, *async_, recv, fn, 1, argv, nullptr) == napi_pending_exception) {
    bool pending = false;
    napi_value error;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
        napi_get_and_clear_last_exception(env, &error) == napi_ok) {
      napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

// The error path: stops the watch, then onError(error) (an fs-like error:
// code, errno, syscall), or an uncaught exception without onError.
void EventfdWatcher::DeliverError(int err, const char* syscall) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::Value error = ErrnoValue(env, err, syscall);
  Napi::Object self = Value();
  Napi::Function on_error = on_error_.IsEmpty() ? Napi::Function() : on_error_.Value();
  Stop(StopReason::kClose);
  if (on_error.IsEmpty()) {
    napi_fatal_exception(env, error);
    return;
  }
  try {
    on_error.MakeCallback(self, {error}, *async_);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());  // a throwing listener is an uncaught exception
  }
}

// Takes the descriptor out of the loop now (uv_close stops the poll, which
// removes it from epoll at once), closes our duplicate, and lets go of what
// the watch held. The handle's memory goes in its close callback.
void EventfdWatcher::Stop(StopReason reason) {
  if (poll_ == nullptr) return;
  uv_poll_t* poll = poll_;
  poll_ = nullptr;
  poll->data = nullptr;
  if (exit_hook_ != nullptr) {
    if (reason == StopReason::kEnvExit) {
      poll->data = exit_hook_;  // finished once the handle is closed
    } else {
      napi_remove_async_cleanup_hook(exit_hook_);
    }
    exit_hook_ = nullptr;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(poll), OnHandleClosed);
  fd_.Reset();
  if (reason == StopReason::kFinalize) return;  // the references go with the object
  on_count_.Reset();
  on_error_.Reset();
  file_.Reset();
  if (self_held_) {
    self_held_ = false;
    Unref();
  }
}

// close() -> what the counter still held (counted, not yet delivered), so
// that nothing signalled before the close is lost.
Napi::Value EventfdWatcher::Close(const Napi::CallbackInfo& info) {
  uint64_t rest = 0;
  if (poll_ != nullptr && ::read(fd_.Get(), &rest, sizeof(rest)) != static_cast<ssize_t>(sizeof(rest)))
    rest = 0;
  Stop(StopReason::kClose);
  return Napi::Number::New(info.Env(), static_cast<double>(rest));
}

Napi::Value EventfdWatcher::RefLoop(const Napi::CallbackInfo& info) {
  if (poll_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

Napi::Value EventfdWatcher::UnrefLoop(const Napi::CallbackInfo& info) {
  if (poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

Napi::Value EventfdWatcher::ActiveGetter(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), poll_ != nullptr);
}

namespace {

// A prepared loopback trigger: struct vfio_irq_set with its one bool, and
// the Device it goes to (held by `holder` while the function lives).
struct Loopback {
  struct {
    u::vfio_irq_set set;
    uint8_t fire[4];
  } arg{};
  Device* device = nullptr;
  Napi::ObjectReference holder;
};
static_assert(offsetof(decltype(Loopback::arg), fire) == u::vfio_irq_set::data_offset);

}  // namespace

// EventfdWatcher.loopbackTrigger(device, index, vector) -> trigger(): the
// ioctl's argument is built here, once.
Napi::Value EventfdWatcher::LoopbackTrigger(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device* device = UnwrapAs<Device>(info[0], Data(env).device_ctor, "device");
  uint32_t index = ToU32(info[1], "index");
  uint32_t vector = ToU32(info[2], "vector");
  auto loopback = std::make_unique<Loopback>();
  loopback->arg.set.argsz = u::vfio_irq_set::data_offset + 1;
  loopback->arg.set.flags = u::VFIO_IRQ_SET_DATA_BOOL | u::VFIO_IRQ_SET_ACTION_TRIGGER;
  loopback->arg.set.index = index;
  loopback->arg.set.start = vector;
  loopback->arg.set.count = 1;
  loopback->arg.fire[0] = 1;
  loopback->device = device;
  loopback->holder = Napi::Persistent(info[0].As<Napi::Object>());
  napi_value fn;
  if (napi_create_function(env, "trigger", NAPI_AUTO_LENGTH, FireLoopback, loopback.get(), &fn) != napi_ok ||
      napi_add_finalizer(
          env, fn, loopback.get(), [](napi_env, void* d, void*) { delete static_cast<Loopback*>(d); },
          nullptr, nullptr) != napi_ok) {
    throw Napi::Error::New(env, "cannot create trigger()");
  }
  loopback.release();  // the function's finalizer frees it
  return Napi::Value(env, fn);
}

napi_value EventfdWatcher::FireLoopback(napi_env env, napi_callback_info info) {
  void* data = nullptr;
  size_t argc = 0;
  napi_get_cb_info(env, info, &argc, nullptr, nullptr, &data);
  auto* loopback = static_cast<Loopback*>(data);
  try {
    if (Ioctl(loopback->device->Fd(env), u::VFIO_DEVICE_SET_IRQS, &loopback->arg) < 0)
      ThrowErrno(env, errno, "ioctl(VFIO_DEVICE_SET_IRQS)");
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
  }
  return nullptr;
}

}  // namespace nvfio
