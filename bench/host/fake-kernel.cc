// A fake kernel for the host benchmark lane: an LD_PRELOAD library that
// answers the iommufd and VFIO ioctls in user space, so that the library's
// own cost per operation can be measured on the real CPU without root, VFIO
// or a guest.
//
// What it does:
//  - open/open64/openat/openat64 (and glibc's _2 fortify variants) of
//    /dev/iommu, /dev/vfio/vfio, /dev/vfio/N and /dev/vfio/devices/vfioN
//    return a real fd (a memfd: close, fstat, mmap all work) and remember
//    what it stands for; access/faccessat say those paths exist. (What is
//    reached in practice: the addon, built with _FILE_OFFSET_BITS=64, calls
//    open64, ioctl, mmap64, pread64/pwrite64 and close; Node's fs.openSync
//    goes through libuv to open64 and fs.existsSync to access. The other
//    variants are there for other builds.)
//  - ioctl on those fds runs the ioctl here: IOMMU_IOAS_ALLOC, IOVA_RANGES
//    (EMSGSIZE with the count when the array is short), ALLOW_IOVAS, MAP,
//    MAP_FILE, COPY, UNMAP (the kernel's rules: EEXIST on overlap, ENOENT
//    when a range cuts a mapping or unmaps nothing), IOMMU_OPTION, DESTROY;
//    VFIO_DEVICE_BIND_IOMMUFD, ATTACH/DETACH_IOMMUFD_PT, GET_INFO,
//    GET_REGION_INFO, GET_IRQ_INFO, SET_IRQS (eventfds kept as the kernel
//    keeps them; DATA_NONE/DATA_BOOL triggers write 1 to them: VFIO's
//    loopback), RESET; and type1: GET_API_VERSION, CHECK_EXTENSION,
//    SET_IOMMU, IOMMU_GET_INFO (IOVA range and DMA-available capabilities),
//    MAP_DMA, UNMAP_DMA, GROUP_GET_STATUS, SET/UNSET_CONTAINER, GET_DEVICE_FD.
//    iommufd structs follow the kernel's size rules (EINVAL below the
//    minimum, E2BIG for non-zero bytes past what it knows).
//  - A device fd is a sparse memfd with its regions at index << 40: mmap of
//    BAR0 and pread/pwrite of config space hit RAM with no help from here.
//  - close of a fake fd drops what it stood for.
//  - /dev/fake-kernel/stats opens a memfd with the counters as JSON (calls
//    and failures per ioctl, opens, eventfd signals, live mappings, the
//    eventfds each device holds): how the benchmark proves the shim was in
//    use and that the calls it timed happened.
//  - /dev/fake-kernel/fire/<fd>/<count> arms a device for `count`
//    interrupts: each of the next `count` epoll_wait/epoll_pwait calls first
//    writes 1 to the eventfd the device holds for the caller's eventfd `fd`
//    (as the kernel's eventfd_signal would when the device interrupts), so
//    that a process can be timed taking interrupts without writing them.
//  - FAKE_KERNEL_SYSCALL=1: each faked ioctl also makes one real system call
//    (FIONREAD on the same fd), so crossing into the kernel is paid too.
//
// sysfs is not faked here: the library reads it from a root it takes as an
// option (AddressSpaceOptions.sysfs), and the benchmark builds a fake tree
// in a temporary directory (bench/host/fake-sysfs.ts).
//
// Structs and ioctl numbers come from the project's own native/uapi headers.
// Build: c++ -std=c++17 -O2 -shared -fPIC -o fake-kernel.so fake-kernel.cc -ldl -lpthread
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../../native/uapi/iommufd.h"
#include "../../native/uapi/vfio.h"
#include "fake-device.h"
#include "node-pool.h"

namespace u = nvfio::uapi;

namespace {

constexpr uint64_t kPage = 4096;

// ---------------------------------------------------------------------------
// The real libc functions
// ---------------------------------------------------------------------------

using OpenFn = int (*)(const char*, int, ...);
using OpenatFn = int (*)(int, const char*, int, ...);
using Open2Fn = int (*)(const char*, int);
using Openat2Fn = int (*)(int, const char*, int);
using AccessFn = int (*)(const char*, int);
using FaccessatFn = int (*)(int, const char*, int, int);
using IoctlFn = int (*)(int, unsigned long, ...);
using CloseFn = int (*)(int);
using EpollWaitFn = int (*)(int, epoll_event*, int, int);
using EpollPwaitFn = int (*)(int, epoll_event*, int, int, const sigset_t*);

struct Real {
  OpenFn open, open64;
  OpenatFn openat, openat64;
  Open2Fn open_2, open64_2;
  Openat2Fn openat_2, openat64_2;
  AccessFn access;
  FaccessatFn faccessat;
  IoctlFn ioctl;
  CloseFn close;
  EpollWaitFn epoll_wait;
  EpollPwaitFn epoll_pwait;
};
Real real;
bool real_ready = false;
bool with_syscall = false;

template <typename Fn>
void Resolve(Fn* slot, const char* name) {
  *slot = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

void InitReal() {
  if (real_ready) return;
  Resolve(&real.open, "open");
  Resolve(&real.open64, "open64");
  Resolve(&real.openat, "openat");
  Resolve(&real.openat64, "openat64");
  Resolve(&real.open_2, "__open_2");
  Resolve(&real.open64_2, "__open64_2");
  Resolve(&real.openat_2, "__openat_2");
  Resolve(&real.openat64_2, "__openat64_2");
  Resolve(&real.access, "access");
  Resolve(&real.faccessat, "faccessat");
  Resolve(&real.ioctl, "ioctl");
  Resolve(&real.close, "close");
  Resolve(&real.epoll_wait, "epoll_wait");
  Resolve(&real.epoll_pwait, "epoll_pwait");
  const char* s = getenv(fake::kSyscallEnv);
  with_syscall = s != nullptr && std::strcmp(s, "1") == 0;
  real_ready = true;
}

__attribute__((constructor)) void OnLoad() { InitReal(); }

// ---------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------

enum Op {
  kIoasAlloc,
  kIoasIovaRanges,
  kIoasAllowIovas,
  kIoasMap,
  kIoasMapFile,
  kIoasCopy,
  kIoasUnmap,
  kOption,
  kDestroy,
  kBind,
  kAttach,
  kDetach,
  kGetInfo,
  kRegionInfo,
  kIrqInfo,
  kSetIrqs,
  kReset,
  kApiVersion,
  kCheckExtension,
  kSetIommu,
  kIommuInfo,
  kMapDma,
  kUnmapDma,
  kGroupStatus,
  kSetContainer,
  kUnsetContainer,
  kGetDeviceFd,
  kUnknown,
  kOpCount,
};
const char* const kOpNames[kOpCount] = {
    "IOMMU_IOAS_ALLOC",
    "IOMMU_IOAS_IOVA_RANGES",
    "IOMMU_IOAS_ALLOW_IOVAS",
    "IOMMU_IOAS_MAP",
    "IOMMU_IOAS_MAP_FILE",
    "IOMMU_IOAS_COPY",
    "IOMMU_IOAS_UNMAP",
    "IOMMU_OPTION",
    "IOMMU_DESTROY",
    "VFIO_DEVICE_BIND_IOMMUFD",
    "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
    "VFIO_DEVICE_DETACH_IOMMUFD_PT",
    "VFIO_DEVICE_GET_INFO",
    "VFIO_DEVICE_GET_REGION_INFO",
    "VFIO_DEVICE_GET_IRQ_INFO",
    "VFIO_DEVICE_SET_IRQS",
    "VFIO_DEVICE_RESET",
    "VFIO_GET_API_VERSION",
    "VFIO_CHECK_EXTENSION",
    "VFIO_SET_IOMMU",
    "VFIO_IOMMU_GET_INFO",
    "VFIO_IOMMU_MAP_DMA",
    "VFIO_IOMMU_UNMAP_DMA",
    "VFIO_GROUP_GET_STATUS",
    "VFIO_GROUP_SET_CONTAINER",
    "VFIO_GROUP_UNSET_CONTAINER",
    "VFIO_GROUP_GET_DEVICE_FD",
    "unknown",
};

enum Kind { kIommufd, kContainer, kGroup, kDevice, kKindCount };
const char* const kKindNames[kKindCount] = {"iommufd", "container", "group", "device"};

struct Stats {
  uint64_t calls[kOpCount];
  uint64_t failures[kOpCount];
  uint64_t opens[kKindCount];
  uint64_t signals;     // eventfd writes of loopback triggers
  uint64_t fires;       // eventfd writes as an epoll_wait began (see kFirePath)
  uint64_t live_areas;  // mappings alive in every IOAS and container
};
Stats stats;
pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

// Armed by opening kFirePath: the next `fire_left` epoll_wait calls each
// write 1 to `fire_fd` first, as a device interrupting whenever the process
// goes to wait for it.
uint64_t fire_left = 0;
int fire_fd = -1;

// ---------------------------------------------------------------------------
// Mappings: one interval set per IOAS or container
// ---------------------------------------------------------------------------

bool Aligned(uint64_t v) { return (v & (kPage - 1)) == 0; }

// [first, last] inside one of the usable IOVA ranges.
bool Usable(uint64_t first, uint64_t last) {
  for (const fake::IovaRange& r : fake::kIovaRanges) {
    if (first >= r.start && last <= r.last) return true;
  }
  return false;
}

class Areas {
 public:
  ~Areas() { stats.live_areas -= by_start_.size(); }

  size_t Size() const { return by_start_.size(); }

  bool Overlaps(uint64_t first, uint64_t last) const { return First(first, last) != by_start_.end(); }

  void Add(uint64_t first, uint64_t last) {
    by_start_.emplace(first, last);
    stats.live_areas++;
  }

  // The lowest page-aligned IOVA where `length` bytes fit (the kernel's choice when it picks).
  bool Pick(uint64_t length, uint64_t* iova) const {
    for (const fake::IovaRange& r : fake::kIovaRanges) {
      uint64_t at = std::max<uint64_t>(r.start, kPage);
      for (;;) {
        if (at + length - 1 > r.last || at + length - 1 < at) break;
        auto hit = First(at, at + length - 1);
        if (hit == by_start_.end()) {
          *iova = at;
          return true;
        }
        at = (hit->second + kPage) & ~(kPage - 1);
      }
    }
    return false;
  }

  // iommufd: every area inside [first, last] goes; one that sticks out is ENOENT.
  int UnmapIommufd(uint64_t first, uint64_t last, uint64_t* unmapped) {
    *unmapped = 0;
    for (auto it = First(first, last); it != by_start_.end(); it = First(first, last)) {
      if (it->first < first || it->second > last) return ENOENT;
      *unmapped += it->second - it->first + 1;
      Erase(it);
    }
    return 0;
  }

  // type1v2: a range may not start or end inside a mapping (EINVAL); what lies inside goes.
  int UnmapType1(uint64_t first, uint64_t last, uint64_t* unmapped) {
    *unmapped = 0;
    auto head = First(first, first);
    if (head != by_start_.end() && head->first != first) return EINVAL;
    auto tail = First(last, last);
    if (tail != by_start_.end() && tail->second != last) return EINVAL;
    for (auto it = First(first, last); it != by_start_.end(); it = First(first, last)) {
      *unmapped += it->second - it->first + 1;
      Erase(it);
    }
    return 0;
  }

  uint64_t Clear() {
    uint64_t bytes = 0;
    for (auto& [start, last] : by_start_) bytes += last - start + 1;
    stats.live_areas -= by_start_.size();
    by_start_.clear();
    return bytes;
  }

 private:
  // first -> last; nodes from the fake kernel's own pool (node-pool.h), not the process's heap
  using Map = std::map<uint64_t, uint64_t, std::less<uint64_t>,
                       fake::PoolAllocator<std::pair<const uint64_t, uint64_t>>>;

  // The lowest area overlapping [first, last], or end().
  Map::const_iterator First(uint64_t first, uint64_t last) const {
    auto it = by_start_.upper_bound(first);
    if (it != by_start_.begin()) {
      auto prev = std::prev(it);
      if (prev->second >= first) return prev;
    }
    return it != by_start_.end() && it->first <= last ? it : by_start_.end();
  }

  void Erase(Map::const_iterator it) {
    by_start_.erase(it);
    stats.live_areas--;
  }

  Map by_start_;
};

// ---------------------------------------------------------------------------
// Objects behind the fake fds
// ---------------------------------------------------------------------------

struct Obj {
  explicit Obj(Kind k) : kind(k) {}
  virtual ~Obj() = default;
  Kind kind;
  int refs = 1;  // the fd's
};

void Put(Obj* o);

struct Ioas {
  uint32_t id;
  uint32_t hwpt = 0;  // the automatic domain, once a device attached
  uint64_t huge_pages = 1;
  int attached = 0;
  Areas areas;
};

struct Iommufd : Obj {
  Iommufd() : Obj(kIommufd) {}
  ~Iommufd() override {
    for (Ioas* a : ioas) delete a;
  }
  Ioas* Find(uint32_t id) {
    for (Ioas* a : ioas) {
      if (a->id == id) return a;
    }
    return nullptr;
  }
  Ioas* FindHwpt(uint32_t id) {
    for (Ioas* a : ioas) {
      if (a->hwpt != 0 && a->hwpt == id) return a;
    }
    return nullptr;
  }
  std::vector<Ioas*> ioas;
  uint32_t next_id = 1;
  uint64_t rlimit_mode = 0;
};

struct Container : Obj {
  Container() : Obj(kContainer) {}
  Areas areas;
  int groups = 0;
  uint32_t iommu_type = 0;
  uint32_t dma_avail = 65535;
};

struct Group : Obj {
  Group() : Obj(kGroup) {}
  ~Group() override {
    if (container) {
      container->groups--;
      Put(container);
    }
  }
  Container* container = nullptr;
};

struct Vector {
  int user_fd = -1;  // the fd the caller handed over (reported in the stats)
  int held_fd = -1;  // our duplicate: the kernel's reference to the eventfd
};

struct Device : Obj {
  Device() : Obj(kDevice) {}
  ~Device() override {
    DisableIrqs();
    for (Vector& v : intx_err_req) Release(v);
    if (ioas) ioas->attached--;
    if (ictx) Put(ictx);
    if (group) Put(group);
  }
  static void Release(Vector& v) {
    if (v.held_fd >= 0) real.close(v.held_fd);
    v = Vector{};
  }
  void DisableIrqs() {
    for (Vector& v : msi) Release(v);
    irq_type = -1;
    enabled = 0;
  }
  Iommufd* ictx = nullptr;  // bound (cdev)
  Ioas* ioas = nullptr;     // attached
  uint32_t devid = 0;
  Group* group = nullptr;  // opened through a group (type1)
  int irq_type = -1;       // MSI or MSI-X when enabled
  uint32_t enabled = 0;    // vectors enabled
  Vector msi[fake::kMaxVectors];
  Vector intx_err_req[5];  // INTx, -, -, ERR, REQ: one trigger each
};

constexpr int kMaxFd = 1 << 16;
Obj* fds[kMaxFd];
uint32_t next_devid = 1;

Obj* Lookup(int fd) { return fd >= 0 && fd < kMaxFd ? __atomic_load_n(&fds[fd], __ATOMIC_ACQUIRE) : nullptr; }

void Put(Obj* o) {
  if (--o->refs == 0) delete o;
}

// ---------------------------------------------------------------------------
// Opening the device paths
// ---------------------------------------------------------------------------

bool AllDigits(const char* s) {
  if (*s == 0) return false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return false;
  }
  return true;
}

// What a path stands for: kind, or -1 when it is not one of ours.
int Classify(const char* path) {
  if (path == nullptr || std::strncmp(path, "/dev/", 5) != 0) return -1;
  if (std::strcmp(path, "/dev/iommu") == 0) return kIommufd;
  if (std::strcmp(path, "/dev/vfio/vfio") == 0) return kContainer;
  if (std::strncmp(path, "/dev/vfio/devices/vfio", 22) == 0 && AllDigits(path + 22)) return kDevice;
  if (std::strncmp(path, "/dev/vfio/", 10) == 0 && AllDigits(path + 10)) return kGroup;
  return -1;
}

// Directories the library checks for (fs.existsSync) as well as the nodes.
bool Exists(const char* path) {
  if (Classify(path) >= 0) return true;
  return path != nullptr &&
         (std::strcmp(path, "/dev/vfio") == 0 || std::strcmp(path, "/dev/vfio/devices") == 0 ||
          std::strcmp(path, fake::kStatsPath) == 0 || std::strcmp(path, fake::kFirePath) == 0);
}

int NewMemfd(const char* name, int flags, uint64_t size) {
  int fd = memfd_create(name, (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
  if (fd < 0) return -1;
  if (size && ftruncate(fd, static_cast<off_t>(size)) < 0) {
    int err = errno;
    real.close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// Config space of the edu-like device (PCI header type 0).
void WriteConfig(int fd) {
  uint8_t cfg[fake::kConfigSize] = {};
  auto put16 = [&](size_t at, uint16_t v) { std::memcpy(cfg + at, &v, 2); };
  auto put32 = [&](size_t at, uint32_t v) { std::memcpy(cfg + at, &v, 4); };
  put16(0x00, fake::kVendor);
  put16(0x02, fake::kDevice);
  put32(0x08, (fake::kClass << 8) | 0x10);  // class code, revision 0x10
  put32(0x10, 0xfea00000);                  // BAR0: 32-bit memory
  cfg[0x3d] = 1;                            // INTA#
  pwrite(fd, cfg, sizeof(cfg), static_cast<off_t>(fake::RegionOffset(u::VFIO_PCI_CONFIG_REGION_INDEX)));
  uint32_t ident = fake::kBar0Ident;
  pwrite(fd, &ident, sizeof(ident), static_cast<off_t>(fake::RegionOffset(u::VFIO_PCI_BAR0_REGION_INDEX)));
}

int NewDeviceFd(int flags) {
  int fd = NewMemfd("fake-vfio-device", flags, fake::RegionOffset(u::VFIO_PCI_CONFIG_REGION_INDEX) + kPage);
  if (fd >= 0) WriteConfig(fd);
  return fd;
}

// Puts `o` in the table at `fd` (a stale entry there was closed behind our back: dropped).
void Install(int fd, Obj* o) {
  if (fd >= kMaxFd) return;
  Obj* old = fds[fd];
  __atomic_store_n(&fds[fd], o, __ATOMIC_RELEASE);
  if (old) Put(old);
  stats.opens[o->kind]++;
}

// fn(device fd, IRQ index, vector, Vector) for every eventfd a fake device holds.
template <typename Fn>
void ForEachVector(Fn fn) {
  for (int fd = 0; fd < kMaxFd; fd++) {
    if (!fds[fd] || fds[fd]->kind != kDevice) continue;
    const auto* d = static_cast<const Device*>(fds[fd]);
    for (uint32_t i = 0; i < fake::kMaxVectors; i++) {
      if (d->msi[i].held_fd >= 0) fn(fd, d->irq_type, i, d->msi[i]);
    }
    for (int i = 0; i < 5; i++) {
      if (d->intx_err_req[i].held_fd >= 0) fn(fd, i, 0, d->intx_err_req[i]);
    }
  }
}

std::string StatsJson();

// kFirePath/<fd>/<count>: arms `count` fires of the eventfd a device holds
// for the caller's eventfd `fd`. ENOENT when no device holds it.
int ArmFire(const char* spec, int flags) {
  char* end;
  long fd = std::strtol(spec, &end, 10);
  unsigned long long count = *end == '/' ? std::strtoull(end + 1, &end, 10) : 0;
  if (*end != 0 || fd < 0 || count == 0) {
    errno = EINVAL;
    return -1;
  }
  int held = -1;
  ForEachVector([&](int, int, uint32_t, const Vector& v) {
    if (v.user_fd == fd) held = v.held_fd;
  });
  if (held < 0) {
    errno = ENOENT;
    return -1;
  }
  fire_fd = held;
  __atomic_store_n(&fire_left, count, __ATOMIC_RELEASE);
  return NewMemfd("fake-kernel-fire", flags, 0);
}

// The write of an armed fire, before an epoll_wait.
void FireIfArmed() {
  if (__atomic_load_n(&fire_left, __ATOMIC_ACQUIRE) == 0) return;
  pthread_mutex_lock(&lock);
  if (fire_left > 0) {
    fire_left--;
    uint64_t one = 1;
    if (write(fire_fd, &one, sizeof(one)) == sizeof(one)) stats.fires++;
  }
  pthread_mutex_unlock(&lock);
}

int OpenStats(int flags) {
  std::string json = StatsJson();
  int fd = NewMemfd("fake-kernel-stats", flags, 0);
  if (fd < 0) return -1;
  if (write(fd, json.data(), json.size()) != static_cast<ssize_t>(json.size()) ||
      lseek(fd, 0, SEEK_SET) < 0) {
    int err = errno;
    real.close(fd);
    errno = err ? err : EIO;
    return -1;
  }
  return fd;
}

// The fd for a fake path, or -2 when `path` is not one of ours.
int OpenFake(const char* path, int flags) {
  if (path == nullptr || std::strncmp(path, "/dev/", 5) != 0) return -2;
  if (std::strcmp(path, fake::kStatsPath) == 0) {
    pthread_mutex_lock(&lock);
    int fd = OpenStats(flags);
    pthread_mutex_unlock(&lock);
    return fd;
  }
  const size_t fire = std::strlen(fake::kFirePath);
  if (std::strncmp(path, fake::kFirePath, fire) == 0 && path[fire] == '/') {
    pthread_mutex_lock(&lock);
    int fd = ArmFire(path + fire + 1, flags);
    pthread_mutex_unlock(&lock);
    return fd;
  }
  int kind = Classify(path);
  if (kind < 0) return -2;
  int fd = kind == kDevice ? NewDeviceFd(flags) : NewMemfd(kKindNames[kind], flags, 0);
  if (fd < 0) return -1;
  if (fd >= kMaxFd) {
    real.close(fd);
    errno = EMFILE;
    return -1;
  }
  Obj* o = kind == kIommufd     ? static_cast<Obj*>(new Iommufd)
           : kind == kContainer ? static_cast<Obj*>(new Container)
           : kind == kGroup     ? static_cast<Obj*>(new Group)
                                : static_cast<Obj*>(new Device);
  pthread_mutex_lock(&lock);
  Install(fd, o);
  pthread_mutex_unlock(&lock);
  return fd;
}

// The open family: a fake fd for our paths, else what the real call returns.
template <typename Fn>
int OpenOr(const char* path, int flags, Fn real_call) {
  InitReal();
  int fd = OpenFake(path, flags);
  return fd != -2 ? fd : real_call();
}

// Declares `mode`: open's third argument when `flags` say there is one.
#define MODE_ARG(flags)                                        \
  int mode = 0;                                                \
  if (((flags)&O_CREAT) || ((flags)&O_TMPFILE) == O_TMPFILE) { \
    va_list ap;                                                \
    va_start(ap, flags);                                       \
    mode = va_arg(ap, int);                                    \
    va_end(ap);                                                \
  }

// ---------------------------------------------------------------------------
// iommufd
// ---------------------------------------------------------------------------

// One iommufd command the kernel's way: the struct copied in
// (copy_struct_from_user: below sizeof(T) is EINVAL, as every command here
// needs its whole struct; bytes past it must be 0, else E2BIG), `fn` run on
// it, and the struct copied back when it succeeded, or, as
// IOMMU_IOAS_IOVA_RANGES does, when it reports EMSGSIZE with the count.
template <typename T, typename Fn>
int Ucmd(void* arg, Fn fn) {
  uint32_t user_size;
  std::memcpy(&user_size, arg, sizeof(user_size));
  if (user_size < sizeof(T)) return EINVAL;
  const auto* extra = static_cast<const uint8_t*>(arg) + sizeof(T);
  for (uint32_t i = 0; i < user_size - sizeof(T); i++) {
    if (extra[i] != 0) return E2BIG;
  }
  T cmd;
  std::memcpy(&cmd, arg, sizeof(T));
  int err = fn(cmd);
  if (err == 0 || err == EMSGSIZE) std::memcpy(arg, &cmd, sizeof(T));
  return err;
}

int IoasAlloc(Iommufd* ictx, u::iommu_ioas_alloc& cmd) {
  if (cmd.flags) return EOPNOTSUPP;
  Ioas* a = new Ioas;
  a->id = ictx->next_id++;
  ictx->ioas.push_back(a);
  cmd.out_ioas_id = a->id;
  return 0;
}

int IovaRanges(Iommufd* ictx, u::iommu_ioas_iova_ranges& cmd) {
  if (cmd.reserved) return EOPNOTSUPP;
  if (!ictx->Find(cmd.ioas_id)) return ENOENT;
  uint32_t room = cmd.num_iovas;
  auto* out = reinterpret_cast<u::iommu_iova_range*>(static_cast<uintptr_t>(cmd.allowed_iovas));
  cmd.num_iovas = 0;
  for (const fake::IovaRange& r : fake::kIovaRanges) {
    if (cmd.num_iovas < room) {
      if (out == nullptr) return EFAULT;
      out[cmd.num_iovas].start = r.start;
      out[cmd.num_iovas].last = r.last;
    }
    cmd.num_iovas++;
  }
  cmd.out_iova_alignment = kPage;
  return cmd.num_iovas > room ? EMSGSIZE : 0;
}

int AllowIovas(Iommufd* ictx, u::iommu_ioas_allow_iovas& cmd) {
  if (cmd.reserved) return EOPNOTSUPP;
  return ictx->Find(cmd.ioas_id) ? 0 : ENOENT;
}

// The checks and bookkeeping MAP, MAP_FILE and COPY share; `iova` in/out.
int MapArea(Iommufd* ictx, uint32_t ioas_id, uint32_t flags, uint64_t length, uint64_t* iova) {
  using F = u::iommufd_ioas_map_flags;
  if (flags &
      ~uint32_t{F::IOMMU_IOAS_MAP_FIXED_IOVA | F::IOMMU_IOAS_MAP_WRITEABLE | F::IOMMU_IOAS_MAP_READABLE}) {
    return EOPNOTSUPP;
  }
  if (!(flags & (F::IOMMU_IOAS_MAP_WRITEABLE | F::IOMMU_IOAS_MAP_READABLE))) return EINVAL;
  Ioas* a = ictx->Find(ioas_id);
  if (!a) return ENOENT;
  if (length == 0 || !Aligned(length)) return EINVAL;
  if (!(flags & F::IOMMU_IOAS_MAP_FIXED_IOVA)) {
    if (!a->areas.Pick(length, iova)) return ENOSPC;
  } else {
    uint64_t last = *iova + length - 1;
    if (!Aligned(*iova) || last < *iova || !Usable(*iova, last)) return EINVAL;
    if (a->areas.Overlaps(*iova, last)) return EEXIST;
  }
  a->areas.Add(*iova, *iova + length - 1);
  return 0;
}

int IoasMap(Iommufd* ictx, u::iommu_ioas_map& cmd) {
  if (cmd.reserved) return EOPNOTSUPP;
  if (cmd.user_va == 0) return EFAULT;
  return MapArea(ictx, cmd.ioas_id, cmd.flags, cmd.length, &cmd.iova);
}

int IoasMapFile(Iommufd* ictx, u::iommu_ioas_map_file& cmd) {
  if (cmd.fd < 0) return EBADF;
  return MapArea(ictx, cmd.ioas_id, cmd.flags, cmd.length, &cmd.iova);
}

int IoasCopy(Iommufd* ictx, u::iommu_ioas_copy& cmd) {
  Ioas* src = ictx->Find(cmd.src_ioas_id);
  if (!src) return ENOENT;
  if (cmd.length == 0 || !src->areas.Overlaps(cmd.src_iova, cmd.src_iova + cmd.length - 1)) return ENOENT;
  return MapArea(ictx, cmd.dst_ioas_id, cmd.flags, cmd.length, &cmd.dst_iova);
}

int IoasUnmap(Iommufd* ictx, u::iommu_ioas_unmap& cmd) {
  Ioas* a = ictx->Find(cmd.ioas_id);
  if (!a) return ENOENT;
  uint64_t unmapped = 0;
  if (cmd.iova == 0 && cmd.length == UINT64_MAX) {
    unmapped = a->areas.Clear();
  } else {
    if (cmd.iova >= UINT64_MAX || cmd.length >= UINT64_MAX) return EOVERFLOW;
    if (cmd.length == 0) return EINVAL;
    uint64_t last = cmd.iova + cmd.length - 1;
    if (last < cmd.iova) return EOVERFLOW;
    if (int e = a->areas.UnmapIommufd(cmd.iova, last, &unmapped)) return e;
    if (unmapped == 0) return ENOENT;
  }
  cmd.length = unmapped;
  return 0;
}

int Option(Iommufd* ictx, u::iommu_option& cmd) {
  if (cmd.reserved) return EOPNOTSUPP;
  if (cmd.op != u::IOMMU_OPTION_OP_SET && cmd.op != u::IOMMU_OPTION_OP_GET) return EOPNOTSUPP;
  uint64_t* value;
  if (cmd.option_id == u::IOMMU_OPTION_RLIMIT_MODE) {
    if (cmd.object_id) return EOPNOTSUPP;
    value = &ictx->rlimit_mode;
  } else if (cmd.option_id == u::IOMMU_OPTION_HUGE_PAGES) {
    Ioas* a = ictx->Find(cmd.object_id);
    if (!a) return ENOENT;
    value = &a->huge_pages;
  } else {
    return EOPNOTSUPP;
  }
  if (cmd.op == u::IOMMU_OPTION_OP_GET) {
    cmd.val64 = *value;
    return 0;
  }
  if (cmd.val64 > 1) return EINVAL;
  *value = cmd.val64;
  return 0;
}

int Destroy(Iommufd* ictx, u::iommu_destroy& cmd) {
  for (auto it = ictx->ioas.begin(); it != ictx->ioas.end(); ++it) {
    Ioas* a = *it;
    if (a->id == cmd.id) {
      if (a->attached) return EBUSY;
      ictx->ioas.erase(it);
      delete a;
      return 0;
    }
    if (a->hwpt == cmd.id) {
      if (a->attached) return EBUSY;
      a->hwpt = 0;
      return 0;
    }
  }
  return ENOENT;
}

// handler(ictx, cmd) for struct T through Ucmd.
template <typename T>
int Run(Iommufd* ictx, void* arg, int (*handler)(Iommufd*, T&)) {
  return Ucmd<T>(arg, [&](T& cmd) { return handler(ictx, cmd); });
}

int IommufdIoctl(Iommufd* ictx, unsigned long req, void* arg, Op* op) {
  switch (req) {
    case u::IOMMU_IOAS_ALLOC:
      *op = kIoasAlloc;
      return Run(ictx, arg, IoasAlloc);
    case u::IOMMU_IOAS_IOVA_RANGES:
      *op = kIoasIovaRanges;
      return Run(ictx, arg, IovaRanges);
    case u::IOMMU_IOAS_ALLOW_IOVAS:
      *op = kIoasAllowIovas;
      return Run(ictx, arg, AllowIovas);
    case u::IOMMU_IOAS_MAP:
      *op = kIoasMap;
      return Run(ictx, arg, IoasMap);
    case u::IOMMU_IOAS_MAP_FILE:
      *op = kIoasMapFile;
      return Run(ictx, arg, IoasMapFile);
    case u::IOMMU_IOAS_COPY:
      *op = kIoasCopy;
      return Run(ictx, arg, IoasCopy);
    case u::IOMMU_IOAS_UNMAP:
      *op = kIoasUnmap;
      return Run(ictx, arg, IoasUnmap);
    case u::IOMMU_OPTION:
      *op = kOption;
      return Run(ictx, arg, Option);
    case u::IOMMU_DESTROY:
      *op = kDestroy;
      return Run(ictx, arg, Destroy);
    default:
      *op = kUnknown;
      return ENOTTY;
  }
}

// ---------------------------------------------------------------------------
// VFIO device
// ---------------------------------------------------------------------------

// VFIO's argsz rule: at least the fields up to the last one the kernel reads.
template <typename T>
int ArgIn(void* arg, size_t minsz, T* cmd) {
  *cmd = T{};
  std::memcpy(cmd, arg, minsz);
  return cmd->argsz < minsz ? EINVAL : 0;
}

// One VFIO command: `minsz` bytes of struct T in, handler(o, cmd), and the
// same bytes back out when it succeeded.
template <typename T, typename O>
int Vfio(O* o, void* arg, size_t minsz, int (*handler)(O*, T&)) {
  T cmd;
  if (int e = ArgIn(arg, minsz, &cmd)) return e;
  int err = handler(o, cmd);
  if (err == 0) std::memcpy(arg, &cmd, minsz);
  return err;
}

#define MINSZ(type, field) (offsetof(type, field) + sizeof(type::field))

int Bind(Device* d, u::vfio_device_bind_iommufd& cmd) {
  if (cmd.flags) return EINVAL;
  if (d->group || d->ictx) return EINVAL;
  Obj* o = Lookup(cmd.iommufd);
  if (!o) return EBADF;
  if (o->kind != kIommufd) return EBADFD;
  d->ictx = static_cast<Iommufd*>(o);
  d->ictx->refs++;
  d->devid = next_devid++;
  cmd.out_devid = d->devid;
  return 0;
}

int Attach(Device* d, u::vfio_device_attach_iommufd_pt& cmd) {
  if (cmd.flags) return EINVAL;
  if (!d->ictx) return EINVAL;
  Ioas* a = d->ictx->Find(cmd.pt_id);
  if (!a) a = d->ictx->FindHwpt(cmd.pt_id);
  if (!a) return ENOENT;
  if (a->hwpt == 0) a->hwpt = d->ictx->next_id++;  // the automatic domain of the IOAS
  if (d->ioas) d->ioas->attached--;
  d->ioas = a;
  a->attached++;
  cmd.pt_id = a->hwpt;
  return 0;
}

int Detach(Device* d, u::vfio_device_detach_iommufd_pt& cmd) {
  if (cmd.flags) return EINVAL;
  if (!d->ioas) return EINVAL;
  d->ioas->attached--;
  d->ioas = nullptr;
  return 0;
}

int GetInfo(Device*, u::vfio_device_info& cmd) {
  cmd.flags = u::VFIO_DEVICE_FLAGS_RESET | u::VFIO_DEVICE_FLAGS_PCI;
  cmd.num_regions = u::VFIO_PCI_NUM_REGIONS;
  cmd.num_irqs = u::VFIO_PCI_NUM_IRQS;
  return 0;
}

int RegionInfo(Device*, u::vfio_region_info& cmd) {
  if (cmd.index >= u::VFIO_PCI_NUM_REGIONS || cmd.index == u::VFIO_PCI_VGA_REGION_INDEX) return EINVAL;
  cmd.offset = fake::RegionOffset(cmd.index);
  cmd.cap_offset = 0;
  cmd.flags = 0;
  cmd.size = 0;
  if (cmd.index == u::VFIO_PCI_BAR0_REGION_INDEX) {
    cmd.size = fake::kBar0Size;
    cmd.flags =
        u::VFIO_REGION_INFO_FLAG_READ | u::VFIO_REGION_INFO_FLAG_WRITE | u::VFIO_REGION_INFO_FLAG_MMAP;
  } else if (cmd.index == u::VFIO_PCI_CONFIG_REGION_INDEX) {
    cmd.size = fake::kConfigSize;
    cmd.flags = u::VFIO_REGION_INFO_FLAG_READ | u::VFIO_REGION_INFO_FLAG_WRITE;
  }
  return 0;
}

uint32_t IrqFlags(uint32_t index) {
  switch (index) {
    case u::VFIO_PCI_INTX_IRQ_INDEX:
      return u::VFIO_IRQ_INFO_EVENTFD | u::VFIO_IRQ_INFO_MASKABLE | u::VFIO_IRQ_INFO_AUTOMASKED;
    case u::VFIO_PCI_MSI_IRQ_INDEX:
    case u::VFIO_PCI_MSIX_IRQ_INDEX:
      return u::VFIO_IRQ_INFO_EVENTFD | u::VFIO_IRQ_INFO_NORESIZE;
    default:
      return u::VFIO_IRQ_INFO_EVENTFD;
  }
}

int IrqInfo(Device*, u::vfio_irq_info& cmd) {
  if (cmd.index >= u::VFIO_PCI_NUM_IRQS) return EINVAL;
  cmd.flags = IrqFlags(cmd.index);
  cmd.count = fake::kIrqCount[cmd.index];
  return 0;
}

// eventfd_signal: what the kernel does for a loopback trigger.
void Signal(const Vector& v) {
  if (v.held_fd < 0) return;
  uint64_t one = 1;
  if (write(v.held_fd, &one, sizeof(one)) == sizeof(one)) stats.signals++;
}

int SetVector(Vector& v, int32_t fd) {
  Device::Release(v);
  if (fd < 0) return 0;
  int held = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (held < 0) return EBADF;
  v.user_fd = fd;
  v.held_fd = held;
  return 0;
}

// vfio_set_irqs_validate_and_prepare, then vfio-pci's handlers for MSI/MSI-X
// (a block of vectors) and the single-trigger indexes (INTx, ERR, REQ).
int SetIrqs(Device* d, void* arg) {
  u::vfio_irq_set hdr;
  const size_t minsz = MINSZ(u::vfio_irq_set, count);
  if (int e = ArgIn(arg, minsz, &hdr)) return e;
  const uint32_t data_type = hdr.flags & u::VFIO_IRQ_SET_DATA_TYPE_MASK;
  const uint32_t action = hdr.flags & u::VFIO_IRQ_SET_ACTION_TYPE_MASK;
  if (hdr.index >= u::VFIO_PCI_NUM_IRQS || hdr.count >= UINT32_MAX - hdr.start ||
      (hdr.flags & ~(u::VFIO_IRQ_SET_DATA_TYPE_MASK | u::VFIO_IRQ_SET_ACTION_TYPE_MASK))) {
    return EINVAL;
  }
  const uint32_t max = fake::kIrqCount[hdr.index];
  if (hdr.start >= max || hdr.start + hdr.count > max) return EINVAL;
  size_t unit = data_type == u::VFIO_IRQ_SET_DATA_NONE      ? 0
                : data_type == u::VFIO_IRQ_SET_DATA_BOOL    ? 1
                : data_type == u::VFIO_IRQ_SET_DATA_EVENTFD ? 4
                                                            : SIZE_MAX;
  if (unit == SIZE_MAX || __builtin_popcount(action) != 1) return EINVAL;
  if (unit && hdr.argsz - minsz < hdr.count * unit) return EINVAL;
  const uint8_t* data = static_cast<const uint8_t*>(arg) + minsz;

  const bool block = hdr.index == u::VFIO_PCI_MSI_IRQ_INDEX || hdr.index == u::VFIO_PCI_MSIX_IRQ_INDEX;
  if (!block) {
    Vector& v = d->intx_err_req[hdr.index];
    if (action != u::VFIO_IRQ_SET_ACTION_TRIGGER) return hdr.index == u::VFIO_PCI_INTX_IRQ_INDEX ? 0 : EINVAL;
    if (data_type == u::VFIO_IRQ_SET_DATA_EVENTFD) {
      if (hdr.count == 0) return EINVAL;
      int32_t fd;
      std::memcpy(&fd, data, sizeof(fd));
      return SetVector(v, fd);
    }
    if (hdr.count == 0 && data_type == u::VFIO_IRQ_SET_DATA_NONE) {
      Device::Release(v);
      return 0;
    }
    if (data_type == u::VFIO_IRQ_SET_DATA_NONE || (hdr.count && data[0])) Signal(v);
    return 0;
  }
  if (action != u::VFIO_IRQ_SET_ACTION_TRIGGER) return EINVAL;  // MSI/MSI-X cannot be masked
  const int index = static_cast<int>(hdr.index);
  if (d->irq_type == index && hdr.count == 0 && data_type == u::VFIO_IRQ_SET_DATA_NONE) {
    d->DisableIrqs();
    return 0;
  }
  if (d->irq_type != index && d->irq_type != -1) return EINVAL;
  if (data_type == u::VFIO_IRQ_SET_DATA_EVENTFD) {
    if (d->irq_type == -1) {
      d->irq_type = index;
      d->enabled = hdr.start + hdr.count;
    } else if (hdr.start + hdr.count > d->enabled) {
      return EINVAL;  // NORESIZE: disable and enable more
    }
    for (uint32_t i = 0; i < hdr.count; i++) {
      int32_t fd;
      std::memcpy(&fd, data + 4 * i, sizeof(fd));
      if (int e = SetVector(d->msi[hdr.start + i], fd)) return e;
    }
    return 0;
  }
  if (d->irq_type != index) return EINVAL;
  for (uint32_t i = 0; i < hdr.count; i++) {
    if (data_type == u::VFIO_IRQ_SET_DATA_NONE || data[i]) Signal(d->msi[hdr.start + i]);
  }
  return 0;
}

int DeviceIoctl(Device* d, unsigned long req, void* arg, Op* op) {
  switch (req) {
    case u::VFIO_DEVICE_BIND_IOMMUFD:
      *op = kBind;
      return Vfio(d, arg, MINSZ(u::vfio_device_bind_iommufd, out_devid), Bind);
    case u::VFIO_DEVICE_ATTACH_IOMMUFD_PT:
      *op = kAttach;
      return Vfio(d, arg, MINSZ(u::vfio_device_attach_iommufd_pt, pt_id), Attach);
    case u::VFIO_DEVICE_DETACH_IOMMUFD_PT:
      *op = kDetach;
      return Vfio(d, arg, MINSZ(u::vfio_device_detach_iommufd_pt, flags), Detach);
    case u::VFIO_DEVICE_GET_INFO:
      *op = kGetInfo;
      return Vfio(d, arg, MINSZ(u::vfio_device_info, num_irqs), GetInfo);
    case u::VFIO_DEVICE_GET_REGION_INFO:
      *op = kRegionInfo;
      return Vfio(d, arg, MINSZ(u::vfio_region_info, offset), RegionInfo);
    case u::VFIO_DEVICE_GET_IRQ_INFO:
      *op = kIrqInfo;
      return Vfio(d, arg, MINSZ(u::vfio_irq_info, count), IrqInfo);
    case u::VFIO_DEVICE_SET_IRQS:
      *op = kSetIrqs;
      return SetIrqs(d, arg);
    case u::VFIO_DEVICE_RESET:
      *op = kReset;
      return 0;
    default:
      *op = kUnknown;
      return ENOTTY;
  }
}

// ---------------------------------------------------------------------------
// type1: container and group
// ---------------------------------------------------------------------------

int IommuInfo(Container* c, void* arg) {
  u::vfio_iommu_type1_info info;
  if (int e = ArgIn(arg, MINSZ(u::vfio_iommu_type1_info, iova_pgsizes), &info)) return e;
  if (!c->iommu_type) return EINVAL;
  const size_t minsz = std::min<size_t>(info.argsz, sizeof(info));
  info.flags = u::VFIO_IOMMU_INFO_PGSIZES | u::VFIO_IOMMU_INFO_CAPS;
  info.iova_pgsizes = kPage | (2u << 20) | (1u << 30);
  // Capabilities after the struct: DMA available (12 bytes, padded to 16), then the IOVA ranges.
  const size_t avail_size = 16;
  const size_t nr = sizeof(fake::kIovaRanges) / sizeof(fake::kIovaRanges[0]);
  const size_t ranges_size =
      sizeof(u::vfio_iommu_type1_info_cap_iova_range) + nr * sizeof(u::vfio_iova_range);
  const size_t caps_size = avail_size + ranges_size;
  if (info.argsz < sizeof(info) + caps_size) {
    info.argsz = static_cast<uint32_t>(sizeof(info) + caps_size);
  } else {
    auto* base = static_cast<uint8_t*>(arg);
    u::vfio_iommu_type1_info_dma_avail avail{};
    avail.header.id = u::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL;
    avail.header.version = 1;
    avail.header.next = static_cast<uint32_t>(sizeof(info) + avail_size);
    avail.avail = c->dma_avail;
    std::memset(base + sizeof(info), 0, caps_size);
    std::memcpy(base + sizeof(info), &avail, sizeof(avail));
    auto* ranges =
        reinterpret_cast<u::vfio_iommu_type1_info_cap_iova_range*>(base + sizeof(info) + avail_size);
    ranges->header.id = u::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE;
    ranges->header.version = 1;
    ranges->header.next = 0;
    ranges->nr_iovas = static_cast<uint32_t>(nr);
    for (size_t i = 0; i < nr; i++) {
      ranges->iova_ranges()[i].start = fake::kIovaRanges[i].start;
      ranges->iova_ranges()[i].end = fake::kIovaRanges[i].last;
    }
    info.cap_offset = sizeof(info);
  }
  std::memcpy(arg, &info, minsz);
  return 0;
}

int MapDma(Container* c, u::vfio_iommu_type1_dma_map& cmd) {
  if (!c->iommu_type) return EINVAL;
  if (cmd.flags & ~(u::VFIO_DMA_MAP_FLAG_READ | u::VFIO_DMA_MAP_FLAG_WRITE)) return EINVAL;
  if (cmd.size == 0 || !Aligned(cmd.size) || !Aligned(cmd.iova) || !Aligned(cmd.vaddr)) return EINVAL;
  uint64_t last = cmd.iova + cmd.size - 1;
  if (last < cmd.iova) return EINVAL;
  if (c->areas.Overlaps(cmd.iova, last)) return EEXIST;
  if (!Usable(cmd.iova, last)) return EINVAL;
  if (c->dma_avail == 0) return ENOSPC;
  c->dma_avail--;
  c->areas.Add(cmd.iova, last);
  return 0;
}

int UnmapDma(Container* c, u::vfio_iommu_type1_dma_unmap& cmd) {
  if (!c->iommu_type) return EINVAL;
  if (cmd.flags & ~u::VFIO_DMA_UNMAP_FLAG_ALL) return EINVAL;
  uint64_t unmapped = 0;
  size_t before = c->areas.Size();
  if (cmd.flags & u::VFIO_DMA_UNMAP_FLAG_ALL) {
    if (cmd.iova || cmd.size) return EINVAL;
    unmapped = c->areas.Clear();
  } else {
    if (cmd.size == 0 || !Aligned(cmd.size) || !Aligned(cmd.iova)) return EINVAL;
    uint64_t last = cmd.iova + cmd.size - 1;
    if (last < cmd.iova) return EINVAL;
    if (int e = c->areas.UnmapType1(cmd.iova, last, &unmapped)) return e;
  }
  c->dma_avail += static_cast<uint32_t>(before - c->areas.Size());
  cmd.size = unmapped;
  return 0;
}

int ContainerIoctl(Container* c, unsigned long req, void* arg, Op* op, int* result) {
  *result = 0;
  switch (req) {
    case u::VFIO_GET_API_VERSION:
      *op = kApiVersion;
      *result = u::VFIO_API_VERSION;
      return 0;
    case u::VFIO_CHECK_EXTENSION: {
      *op = kCheckExtension;
      auto ext = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(arg));
      *result =
          ext == u::VFIO_TYPE1_IOMMU || ext == u::VFIO_TYPE1v2_IOMMU || ext == u::VFIO_UNMAP_ALL ? 1 : 0;
      return 0;
    }
    case u::VFIO_SET_IOMMU: {
      *op = kSetIommu;
      auto type = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(arg));
      if (c->groups == 0) return EINVAL;
      if (c->iommu_type) return EBUSY;
      if (type != u::VFIO_TYPE1_IOMMU && type != u::VFIO_TYPE1v2_IOMMU) return ENODEV;
      c->iommu_type = type;
      return 0;
    }
    case u::VFIO_IOMMU_GET_INFO:
      *op = kIommuInfo;
      return IommuInfo(c, arg);
    case u::VFIO_IOMMU_MAP_DMA:
      *op = kMapDma;
      return Vfio(c, arg, MINSZ(u::vfio_iommu_type1_dma_map, size), MapDma);
    case u::VFIO_IOMMU_UNMAP_DMA:
      *op = kUnmapDma;
      return Vfio(c, arg, MINSZ(u::vfio_iommu_type1_dma_unmap, size), UnmapDma);
    default:
      *op = kUnknown;
      return ENOTTY;
  }
}

bool IsBdf(const char* s) {
  // DDDD:BB:SS.F
  static const char kShape[] = "xxxx:xx:xx.x";
  for (size_t i = 0; i < sizeof(kShape) - 1; i++) {
    if (kShape[i] == 'x' ? !isxdigit(static_cast<unsigned char>(s[i])) : s[i] != kShape[i]) return false;
  }
  return s[sizeof(kShape) - 1] == 0;
}

int GroupIoctl(Group* g, unsigned long req, void* arg, Op* op, int* result) {
  *result = 0;
  switch (req) {
    case u::VFIO_GROUP_GET_STATUS: {
      *op = kGroupStatus;
      u::vfio_group_status st;
      if (int e = ArgIn(arg, MINSZ(u::vfio_group_status, flags), &st)) return e;
      st.flags = u::VFIO_GROUP_FLAGS_VIABLE | (g->container ? u::VFIO_GROUP_FLAGS_CONTAINER_SET : 0);
      std::memcpy(arg, &st, sizeof(st));
      return 0;
    }
    case u::VFIO_GROUP_SET_CONTAINER: {
      *op = kSetContainer;
      int32_t cfd;
      std::memcpy(&cfd, arg, sizeof(cfd));
      if (g->container) return EINVAL;
      Obj* o = Lookup(cfd);
      if (!o || o->kind != kContainer) return EBADF;
      g->container = static_cast<Container*>(o);
      g->container->refs++;
      g->container->groups++;
      return 0;
    }
    case u::VFIO_GROUP_UNSET_CONTAINER:
      *op = kUnsetContainer;
      if (!g->container) return EINVAL;
      g->container->groups--;
      Put(g->container);
      g->container = nullptr;
      return 0;
    case u::VFIO_GROUP_GET_DEVICE_FD: {
      *op = kGetDeviceFd;
      if (!g->container || !g->container->iommu_type) return EINVAL;
      if (!IsBdf(static_cast<const char*>(arg))) return ENODEV;
      int fd = NewDeviceFd(O_CLOEXEC);
      if (fd < 0) return errno;
      if (fd >= kMaxFd) {
        real.close(fd);
        return EMFILE;
      }
      auto* d = new Device;
      d->group = g;
      g->refs++;
      Install(fd, d);
      *result = fd;
      return 0;
    }
    default:
      *op = kUnknown;
      return ENOTTY;
  }
}

// One faked ioctl: the errno it fails with (0: success, *result its value).
int FakeIoctl(Obj* o, unsigned long req, void* arg, int* result) {
  Op op = kUnknown;
  int err;
  *result = 0;
  switch (o->kind) {
    case kIommufd:
      err = IommufdIoctl(static_cast<Iommufd*>(o), req, arg, &op);
      break;
    case kDevice:
      err = DeviceIoctl(static_cast<Device*>(o), req, arg, &op);
      break;
    case kContainer:
      err = ContainerIoctl(static_cast<Container*>(o), req, arg, &op, result);
      break;
    case kGroup:
      err = GroupIoctl(static_cast<Group*>(o), req, arg, &op, result);
      break;
    default:
      err = ENOTTY;
  }
  stats.calls[op]++;
  if (err) stats.failures[op]++;
  return err;
}

// ---------------------------------------------------------------------------
// The counters as JSON
// ---------------------------------------------------------------------------

void Append(std::string* s, const char* fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n > 0) s->append(buf, std::min<size_t>(n, sizeof(buf) - 1));
}

void AppendCounts(std::string* s, const char* name, const uint64_t* counts) {
  Append(s, "\"%s\":{", name);
  bool first = true;
  for (int i = 0; i < kOpCount; i++) {
    if (!counts[i]) continue;
    Append(s, "%s\"%s\":%llu", first ? "" : ",", kOpNames[i], static_cast<unsigned long long>(counts[i]));
    first = false;
  }
  s->append("}");
}

std::string StatsJson() {
  std::string s = "{";
  Append(&s, "\"syscall\":%s,", with_syscall ? "true" : "false");
  s.append("\"opens\":{");
  for (int k = 0; k < kKindCount; k++) {
    Append(&s, "%s\"%s\":%llu", k ? "," : "", kKindNames[k], static_cast<unsigned long long>(stats.opens[k]));
  }
  s.append("},");
  AppendCounts(&s, "calls", stats.calls);
  s.append(",");
  AppendCounts(&s, "failures", stats.failures);
  Append(&s, ",\"signals\":%llu,\"fires\":%llu,\"liveAreas\":%llu,\"eventfds\":[",
         static_cast<unsigned long long>(stats.signals), static_cast<unsigned long long>(stats.fires),
         static_cast<unsigned long long>(stats.live_areas));
  bool first = true;
  ForEachVector([&](int fd, int index, uint32_t n, const Vector& v) {
    Append(&s, "%s{\"device\":%d,\"index\":%d,\"vector\":%u,\"fd\":%d}", first ? "" : ",", fd, index, n,
           v.user_fd);
    first = false;
  });
  s.append("]}\n");
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------
// The interposed libc functions
// ---------------------------------------------------------------------------

extern "C" {

int open(const char* path, int flags, ...) {
  MODE_ARG(flags);
  return OpenOr(path, flags, [&] { return real.open(path, flags, mode); });
}

int open64(const char* path, int flags, ...) {
  MODE_ARG(flags);
  return OpenOr(path, flags, [&] { return real.open64(path, flags, mode); });
}

// Only absolute paths are ours: dirfd does not matter to them.
int openat(int dirfd, const char* path, int flags, ...) {
  MODE_ARG(flags);
  return OpenOr(path, flags, [&] { return real.openat(dirfd, path, flags, mode); });
}

int openat64(int dirfd, const char* path, int flags, ...) {
  MODE_ARG(flags);
  return OpenOr(path, flags, [&] { return real.openat64(dirfd, path, flags, mode); });
}

int __open_2(const char* path, int flags) {
  return OpenOr(path, flags, [&] { return real.open_2(path, flags); });
}

int __open64_2(const char* path, int flags) {
  return OpenOr(path, flags, [&] { return real.open64_2(path, flags); });
}

int __openat_2(int dirfd, const char* path, int flags) {
  return OpenOr(path, flags, [&] { return real.openat_2(dirfd, path, flags); });
}

int __openat64_2(int dirfd, const char* path, int flags) {
  return OpenOr(path, flags, [&] { return real.openat64_2(dirfd, path, flags); });
}

int access(const char* path, int mode) noexcept {
  InitReal();
  return Exists(path) ? 0 : real.access(path, mode);
}

int faccessat(int dirfd, const char* path, int mode, int flags) noexcept {
  InitReal();
  return Exists(path) ? 0 : real.faccessat(dirfd, path, mode, flags);
}

int ioctl(int fd, unsigned long req, ...) noexcept {
  va_list ap;
  va_start(ap, req);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (!Lookup(fd)) {
    InitReal();
    return real.ioctl(fd, req, arg);
  }
  pthread_mutex_lock(&lock);
  Obj* o = fds[fd];
  int result = -1;
  int err = o ? FakeIoctl(o, req, arg, &result) : EBADF;
  pthread_mutex_unlock(&lock);
  if (with_syscall) {
    int pending;
    real.ioctl(fd, FIONREAD, &pending);
  }
  if (err) {
    errno = err;
    return -1;
  }
  return result;
}

int epoll_wait(int epfd, epoll_event* events, int max, int timeout) {
  InitReal();
  FireIfArmed();
  return real.epoll_wait(epfd, events, max, timeout);
}

int epoll_pwait(int epfd, epoll_event* events, int max, int timeout, const sigset_t* mask) {
  InitReal();
  FireIfArmed();
  return real.epoll_pwait(epfd, events, max, timeout, mask);
}

int close(int fd) {
  InitReal();
  if (!Lookup(fd)) return real.close(fd);
  pthread_mutex_lock(&lock);
  Obj* o = fds[fd];
  __atomic_store_n(&fds[fd], nullptr, __ATOMIC_RELEASE);
  if (o) Put(o);
  int r = real.close(fd);
  pthread_mutex_unlock(&lock);
  return r;
}

}  // extern "C"
