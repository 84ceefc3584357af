{
  "targets": [
    {
      "target_name": "vfio",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/memory.cc",
        "native/file.cc",
        "native/pin_table.cc",
        "native/dma_core.cc",
        "native/fast_path.cc",
        "native/async_ioctl.cc",
        "native/fragment.cc",
        "native/iommufd.cc",
        "native/container.cc",
        "native/group.cc",
        "native/device.cc",
        "native/eventfd_watch.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    }
  ]
}
