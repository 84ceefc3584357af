// JavaScript class EventfdWatcher: watches one eventfd with a uv_poll_t on
// the environment's own libuv loop (no thread, no busy polling) and calls
// back with the counter it reads each time the eventfd becomes readable.
//
//   new EventfdWatcher(eventfd: NativeFile, onCount(count), onError?(error))
//                            the eventfd must be non-blocking (as
//                            NativeFile.eventfd() makes it); onCount gets the
//                            count alone; a read error stops the watch and
//                            goes to onError (without it: an uncaught
//                            exception). Both are called as methods of the
//                            watcher, through MakeCallback (its async
//                            context; microtasks and ticks run after).
//   watcher.close()          stop watching (idempotent); returns the count
//                            still unread
//   watcher.ref(), unref()   whether the watch keeps the loop alive
//   watcher.active
//   EventfdWatcher.loopbackTrigger(device, index, vector) -> trigger()
//                            VFIO's loopback trigger of one vector of a
//                            Device (VFIO_DEVICE_SET_IRQS with DATA_BOOL |
//                            ACTION_TRIGGER), prepared once: trigger() makes
//                            the ioctl, unwrapping, converting and allocating
//                            nothing; ERR_VFIO_CLOSED once the device closed.
//                            It holds the device while JavaScript holds it.
//
// While it watches, the watcher holds itself, the eventfd's JavaScript
// object and a duplicate of its descriptor: neither close() of the eventfd
// nor the garbage collector can pull the descriptor or the handle out from
// under libuv. The environment's exit (main thread or worker) stops it.
#ifndef NVFIO_EVENTFD_WATCH_H
#define NVFIO_EVENTFD_WATCH_H

#include <uv.h>

#include <memory>

#include "common.h"

namespace nvfio {

class EventfdWatcher : public Napi::ObjectWrap<EventfdWatcher> {
 public:
  static constexpr const char* kClassName = "EventfdWatcher";
  static Napi::Function Init(Napi::Env env);

  explicit EventfdWatcher(const Napi::CallbackInfo& info);
  ~EventfdWatcher() override;

 private:
  enum class StopReason { kClose, kEnvExit, kFinalize };

  static void OnReadable(uv_poll_t* handle, int status, int events);
  static void OnHandleClosed(uv_handle_t* handle);
  static void OnEnvExit(napi_async_cleanup_hook_handle hook, void* arg);

  void Deliver(int status);
  void DeliverCount(uint64_t count);
  void DeliverError(int err, const char* syscall);
  void Stop(StopReason reason);

  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value RefLoop(const Napi::CallbackInfo& info);
  Napi::Value UnrefLoop(const Napi::CallbackInfo& info);
  Napi::Value ActiveGetter(const Napi::CallbackInfo& info);
  static Napi::Value LoopbackTrigger(const Napi::CallbackInfo& info);
  static napi_value FireLoopback(napi_env env, napi_callback_info info);

  UniqueFd fd_;                // our own duplicate of the eventfd
  uv_poll_t* poll_ = nullptr;  // on the heap: freed by its close callback
  napi_async_cleanup_hook_handle exit_hook_ = nullptr;
  Napi::ObjectReference file_;  // the eventfd's JavaScript object
  Napi::FunctionReference on_count_;
  Napi::FunctionReference on_error_;  // empty: errors are uncaught exceptions
  std::unique_ptr<Napi::AsyncContext> async_;
  bool self_held_ = false;
};

}  // namespace nvfio

#endif
