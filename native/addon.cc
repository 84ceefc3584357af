// The addon's entry point: one set of classes per environment (main thread
// or worker), no process-wide state.
#include "common.h"
#include "container.h"
#include "device.h"
#include "eventfd_watch.h"
#include "file.h"
#include "group.h"
#include "iommufd.h"
#include "memory.h"
#include "memory_table.h"

namespace nvfio {

AddonData::AddonData() : memories(std::make_shared<MemoryTable>()) {}

namespace {

// setErrorClass(VfioError): the class native errors are built with.
Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) ThrowType(info.Env(), "setErrorClass takes a constructor");
  Data(info.Env()).error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  auto add = [&](const char* name, Napi::Function ctor, Napi::FunctionReference& ref) {
    ref = Napi::Persistent(ctor);
    exports.Set(name, ctor);
  };
  add(Memory::kClassName, Memory::Init(env), data->memory_ctor);
  add(File::kClassName, File::Init(env), data->file_ctor);
  add(Iommufd::kClassName, Iommufd::Init(env), data->iommufd_ctor);
  add(Container::kClassName, Container::Init(env), data->container_ctor);
  add(Group::kClassName, Group::Init(env), data->group_ctor);
  add(Device::kClassName, Device::Init(env), data->device_ctor);
  add(EventfdWatcher::kClassName, EventfdWatcher::Init(env), data->eventfd_watcher_ctor);
  exports.Set("setErrorClass", Napi::Function::New<SetErrorClass>(env, "setErrorClass"));
  exports.Set("pageSize", Napi::Number::New(env, static_cast<double>(::sysconf(_SC_PAGESIZE))));
  return exports;
}

}  // namespace nvfio

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return nvfio::Init(env, exports); }

NODE_API_MODULE(vfio, InitAddon)
