#include "eventfd_watch.h"

#include <fcntl.h>
#include <unistd.h>

#include "file.h"

namespace nvfio {

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
                     });
}

// new EventfdWatcher(eventfd, callback): watches from now on.
EventfdWatcher::EventfdWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EventfdWatcher>(info) {
  Napi::Env env = info.Env();
  File* file = UnwrapAs<File>(info[0], Data(env).file_ctor, "eventfd");
  if (!info[1].IsFunction()) ThrowType(env, "callback must be a function");
  fd_.Reset(::fcntl(file->Fd(env), F_DUPFD_CLOEXEC, 0));
  if (!fd_.Valid()) ThrowErrno(env, errno, "fcntl(F_DUPFD_CLOEXEC)", "(eventfd)");

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
  callback_ = Napi::Persistent(info[1].As<Napi::Function>());
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

// Reads the counter (which resets it) and calls back with it. A read that
// finds nothing (EAGAIN) is not an event; an error stops the watch and is
// handed to the callback.
void EventfdWatcher::Deliver(int status) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  uint64_t count = 0;
  int err = status < 0 ? -status : 0;
  const char* syscall = "uv_poll";  // libuv reported the error
  if (err == 0) {
    ssize_t n;
    do {
      n = ::read(fd_.Get(), &count, sizeof(count));
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) err = errno;
    syscall = "read";
  }
  Napi::Object self = Value();
  Napi::Function callback = callback_.Value();
  Napi::Value error = err != 0 ? ErrnoValue(env, err, syscall) : env.Undefined();
  if (err != 0) Stop(StopReason::kClose);
  try {
    callback.MakeCallback(self, {Napi::Number::New(env, static_cast<double>(count)), error}, *async_);
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
  callback_.Reset();
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
  if (poll_ != nullptr && ::read(fd_.Get(), &rest, sizeof(rest)) != static_cast<ssize_t>(sizeof(rest))) rest = 0;
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

}  // namespace nvfio
