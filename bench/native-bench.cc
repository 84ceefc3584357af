// The C side of `npm run bench`: the same system calls the addon makes, from
// a plain C++ program, timed the same way, so that the ratio between the two
// is what the addon and the library add.
//
//   native-bench BACKEND BDF[,BDF...]|- SPEC...
//
// BACKEND is iommufd (an IOAS, devices through their cdev, bound and attached),
// type1 (a container with type1v2, devices through their groups) or none (no
// VFIO: for blockread through a kernel driver, with BDF list -). Every
// BDF is opened and attached first, as the library does. Each SPEC is
// `op=NAME,key=value,...`; for each, after `warmup` untimed rounds, one line
// {"id":"...","ns":[...]} with `samples` times in nanoseconds per operation:
//
//   op=map      size kind=anon|hugetlb iova      map + unmap of one buffer
//   op=physlist n iova                           n maps of 4 KiB buffers at
//                                                consecutive IOVAs + one unmap
//   op=mmio     bdf bar offset access=read|write value=N|read batch via=mmap|pread
//                                                `batch` 32-bit accesses (value=read:
//                                                write back what is there)
//   op=irq      bdf                              MSI-X vector 0 on an eventfd:
//                                                VFIO's trigger, epoll_wait, read
//   op=blockread path qd count span              `count` random 4 KiB O_DIRECT
//                                                reads at queue depth qd
//                                                (io_uring), from the first
//                                                `span` bytes
//
// Before anything it starts one idle thread, as Node has threads: while a
// process shares its fd table with another thread, the kernel takes a
// reference on the file for every fd system call (fdget's fast path is for
// single-threaded processes only), so a single-threaded C program would be
// charged less per ioctl than the addon is.
//
// It uses the project's own uAPI definitions (native/uapi), never the
// system's <linux/vfio.h>; io_uring's come from the system's headers.
// Build: g++ -std=c++17 -O2 -o native-bench native-bench.cc
#include <dirent.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/mman.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "../native/uapi/iommufd.h"
#include "../native/uapi/vfio.h"

namespace u = nvfio::uapi;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kHugePage = 2u << 20;

[[noreturn]] void Fail(const std::string& what) {
  throw std::runtime_error(what + (errno ? std::string(": ") + std::strerror(errno) : std::string()));
}

// ioctl(2) retried on EINTR, as the addon's Ioctl().
int Ioctl(int fd, unsigned long request, void* arg) {
  int r;
  do {
    r = ::ioctl(fd, request, arg);
  } while (r < 0 && errno == EINTR);
  return r;
}

void Check(int r, const char* what) {
  if (r < 0) Fail(what);
}

int Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) Fail("open " + path);
  return fd;
}

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

// The last path component of a sysfs link, e.g. iommu_group -> "7".
std::string LinkName(const std::string& path) {
  char buf[256];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf) - 1);
  if (n < 0) Fail("readlink " + path);
  buf[n] = 0;
  const char* slash = std::strrchr(buf, '/');
  return slash ? slash + 1 : buf;
}

// Memory as DmaBuffer.allocate() makes it: populated, kept out of fork()ed children.
uint8_t* Allocate(uint64_t length, bool huge) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | (huge ? MAP_HUGETLB | MAP_HUGE_2MB : 0);
  void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED) Fail("mmap (DMA buffer)");
  Check(::madvise(p, length, MADV_DONTFORK), "madvise");
  return static_cast<uint8_t*>(p);
}

// One DMA address space with its devices attached: an iommufd IOAS or a type1 container.
class Space {
 public:
  Space(const std::string& backend, const std::vector<std::string>& bdfs) : iommufd_(backend == "iommufd") {
    if (iommufd_) {
      fd_ = Open("/dev/iommu");
      u::iommu_ioas_alloc cmd{};
      cmd.size = sizeof(cmd);
      Check(Ioctl(fd_, u::IOMMU_IOAS_ALLOC, &cmd), "IOMMU_IOAS_ALLOC");
      ioas_ = cmd.out_ioas_id;
    } else if (backend == "type1") {
      fd_ = Open("/dev/vfio/vfio");
    } else if (backend != "none") {
      throw std::runtime_error("backend must be iommufd, type1 or none");
    }
    for (const std::string& bdf : bdfs) devices_[bdf] = iommufd_ ? AttachCdev(bdf) : AttachGroup(bdf);
  }

  int Device(const std::string& bdf) const {
    auto it = devices_.find(bdf);
    if (it == devices_.end()) throw std::runtime_error(bdf + " was not opened");
    return it->second;
  }

  void Map(const uint8_t* va, uint64_t length, uint64_t iova) const {
    if (iommufd_) {
      u::iommu_ioas_map cmd{};
      cmd.size = sizeof(cmd);
      cmd.flags = u::IOMMU_IOAS_MAP_FIXED_IOVA | u::IOMMU_IOAS_MAP_READABLE | u::IOMMU_IOAS_MAP_WRITEABLE;
      cmd.ioas_id = ioas_;
      cmd.user_va = reinterpret_cast<uintptr_t>(va);
      cmd.length = length;
      cmd.iova = iova;
      Check(Ioctl(fd_, u::IOMMU_IOAS_MAP, &cmd), "IOMMU_IOAS_MAP");
    } else {
      u::vfio_iommu_type1_dma_map cmd{};
      cmd.argsz = sizeof(cmd);
      cmd.flags = u::VFIO_DMA_MAP_FLAG_READ | u::VFIO_DMA_MAP_FLAG_WRITE;
      cmd.vaddr = reinterpret_cast<uintptr_t>(va);
      cmd.iova = iova;
      cmd.size = length;
      Check(Ioctl(fd_, u::VFIO_IOMMU_MAP_DMA, &cmd), "VFIO_IOMMU_MAP_DMA");
    }
  }

  void Unmap(uint64_t iova, uint64_t length) const {
    if (iommufd_) {
      u::iommu_ioas_unmap cmd{};
      cmd.size = sizeof(cmd);
      cmd.ioas_id = ioas_;
      cmd.iova = iova;
      cmd.length = length;
      Check(Ioctl(fd_, u::IOMMU_IOAS_UNMAP, &cmd), "IOMMU_IOAS_UNMAP");
    } else {
      u::vfio_iommu_type1_dma_unmap cmd{};
      cmd.argsz = sizeof(cmd);
      cmd.iova = iova;
      cmd.size = length;
      Check(Ioctl(fd_, u::VFIO_IOMMU_UNMAP_DMA, &cmd), "VFIO_IOMMU_UNMAP_DMA");
    }
  }

 private:
  int AttachCdev(const std::string& bdf) const {
    int dev = Open("/dev/vfio/devices/" + LinkNameOfCdev(bdf));
    u::vfio_device_bind_iommufd bind{};
    bind.argsz = sizeof(bind);
    bind.iommufd = fd_;
    Check(Ioctl(dev, u::VFIO_DEVICE_BIND_IOMMUFD, &bind), "VFIO_DEVICE_BIND_IOMMUFD");
    u::vfio_device_attach_iommufd_pt attach{};
    attach.argsz = sizeof(attach);
    attach.pt_id = ioas_;
    Check(Ioctl(dev, u::VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach), "VFIO_DEVICE_ATTACH_IOMMUFD_PT");
    return dev;
  }

  static std::string LinkNameOfCdev(const std::string& bdf) {
    // /sys/bus/pci/devices/BDF/vfio-dev/ holds one entry: vfioN.
    const std::string dir = "/sys/bus/pci/devices/" + bdf + "/vfio-dev";
    DIR* d = ::opendir(dir.c_str());
    if (!d) Fail(bdf + " has no VFIO cdev (" + dir + ")");
    std::string name;
    while (dirent* e = ::readdir(d)) {
      if (std::strncmp(e->d_name, "vfio", 4) == 0) name = e->d_name;
    }
    ::closedir(d);
    if (name.empty()) Fail(bdf + " has no VFIO cdev");
    return name;
  }

  int AttachGroup(const std::string& bdf) {
    int group = Open("/dev/vfio/" + LinkName("/sys/bus/pci/devices/" + bdf + "/iommu_group"));
    u::vfio_group_status status{};
    status.argsz = sizeof(status);
    Check(Ioctl(group, u::VFIO_GROUP_GET_STATUS, &status), "VFIO_GROUP_GET_STATUS");
    if (!(status.flags & u::VFIO_GROUP_FLAGS_VIABLE)) Fail("group of " + bdf + " is not viable");
    int32_t container = fd_;
    Check(Ioctl(group, u::VFIO_GROUP_SET_CONTAINER, &container), "VFIO_GROUP_SET_CONTAINER");
    if (!iommu_set_) {
      Check(::ioctl(fd_, u::VFIO_SET_IOMMU, static_cast<unsigned long>(u::VFIO_TYPE1v2_IOMMU)),
            "VFIO_SET_IOMMU");
      iommu_set_ = true;
    }
    int dev = Ioctl(group, u::VFIO_GROUP_GET_DEVICE_FD, const_cast<char*>(bdf.c_str()));
    Check(dev, "VFIO_GROUP_GET_DEVICE_FD");
    return dev;
  }

  bool iommufd_;
  int fd_ = -1;
  uint32_t ioas_ = 0;
  bool iommu_set_ = false;
  std::map<std::string, int> devices_;
};

using Spec = std::map<std::string, std::string>;

Spec ParseSpec(const std::string& text) {
  Spec spec;
  size_t at = 0;
  while (at <= text.size()) {
    size_t end = text.find(',', at);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(at, end - at);
    size_t eq = item.find('=');
    if (eq == std::string::npos) throw std::runtime_error("bad spec item: " + item);
    spec[item.substr(0, eq)] = item.substr(eq + 1);
    at = end + 1;
  }
  return spec;
}

uint64_t Num(const Spec& s, const char* key) {
  auto it = s.find(key);
  if (it == s.end()) throw std::runtime_error(std::string("spec lacks ") + key);
  return std::stoull(it->second, nullptr, 0);
}

std::string Str(const Spec& s, const char* key) {
  auto it = s.find(key);
  if (it == s.end()) throw std::runtime_error(std::string("spec lacks ") + key);
  return it->second;
}

// Runs `op` warmup times untimed, then `samples` times timed; each run is
// `per` operations. Prints the spec's result line.
template <typename Op>
void Measure(const Spec& s, uint64_t per, Op op) {
  for (uint64_t i = 0; i < Num(s, "warmup"); i++) op();
  const uint64_t samples = Num(s, "samples");
  std::vector<double> ns;
  ns.reserve(samples);
  for (uint64_t i = 0; i < samples; i++) {
    uint64_t t0 = NowNs();
    op();
    ns.push_back(double(NowNs() - t0) / double(per));
  }
  std::printf("{\"id\":\"%s\",\"ns\":[", Str(s, "id").c_str());
  for (size_t i = 0; i < ns.size(); i++) std::printf("%s%.1f", i ? "," : "", ns[i]);
  std::printf("]}\n");
  std::fflush(stdout);
}

void BenchMap(const Space& space, const Spec& s) {
  const uint64_t size = Num(s, "size"), iova = Num(s, "iova");
  const bool huge = Str(s, "kind") == "hugetlb";
  uint8_t* buf = Allocate(size, huge);
  Measure(s, 1, [&] {
    space.Map(buf, size, iova);
    space.Unmap(iova, size);
  });
  ::munmap(buf, size);
}

void BenchPhysList(const Space& space, const Spec& s) {
  const uint64_t n = Num(s, "n"), iova = Num(s, "iova");
  std::vector<uint8_t*> bufs;
  for (uint64_t i = 0; i < n; i++) bufs.push_back(Allocate(kPage, false));
  Measure(s, 1, [&] {
    for (uint64_t i = 0; i < n; i++) space.Map(bufs[i], kPage, iova + i * kPage);
    space.Unmap(iova, n * kPage);
  });
  for (uint8_t* b : bufs) ::munmap(b, kPage);
}

void BenchMmio(const Space& space, const Spec& s) {
  const int dev = space.Device(Str(s, "bdf"));
  u::vfio_region_info info{};
  info.argsz = sizeof(info);
  info.index = static_cast<uint32_t>(Num(s, "bar"));
  Check(Ioctl(dev, u::VFIO_DEVICE_GET_REGION_INFO, &info), "VFIO_DEVICE_GET_REGION_INFO");
  const uint64_t offset = Num(s, "offset"), batch = Num(s, "batch");
  const bool write = Str(s, "access") == "write";
  // value=read writes back what the register holds.
  const bool own = Str(s, "value") == "read";
  if (Str(s, "via") == "pread") {
    uint32_t word = own ? 0 : static_cast<uint32_t>(Num(s, "value"));
    const off_t at = static_cast<off_t>(info.offset + offset);
    if (own && ::pread(dev, &word, 4, at) != 4) Fail("short region access");
    Measure(s, batch, [&] {
      for (uint64_t i = 0; i < batch; i++) {
        ssize_t n = write ? ::pwrite(dev, &word, 4, at) : ::pread(dev, &word, 4, at);
        if (n != 4) Fail("short region access");
      }
    });
    return;
  }
  void* map =
      ::mmap(nullptr, info.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev, static_cast<off_t>(info.offset));
  if (map == MAP_FAILED) Fail("mmap (BAR)");
  volatile uint32_t* reg = reinterpret_cast<volatile uint32_t*>(static_cast<uint8_t*>(map) + offset);
  const uint32_t value = own ? *reg : static_cast<uint32_t>(Num(s, "value"));
  uint32_t sink = 0;
  Measure(s, batch, [&] {
    if (write) {
      for (uint64_t i = 0; i < batch; i++) *reg = value;
    } else {
      for (uint64_t i = 0; i < batch; i++) sink ^= *reg;
    }
  });
  ::munmap(map, info.size);
  if (sink == 0xdeadbeef) std::fprintf(stderr, "\n");  // keeps the loads observable
}

// VFIO_DEVICE_SET_IRQS on MSI-X (index 2) with no data or with eventfds.
void SetMsix(int dev, uint32_t flags, uint32_t count, const int32_t* eventfds) {
  std::vector<uint8_t> buf(sizeof(u::vfio_irq_set) + (eventfds ? count * sizeof(int32_t) : 0));
  auto* set = reinterpret_cast<u::vfio_irq_set*>(buf.data());
  set->argsz = static_cast<uint32_t>(buf.size());
  set->flags = flags;
  set->index = 2;  // VFIO_PCI_MSIX_IRQ_INDEX
  set->count = count;
  if (eventfds) std::memcpy(set->data(), eventfds, count * sizeof(int32_t));
  Check(Ioctl(dev, u::VFIO_DEVICE_SET_IRQS, buf.data()), "VFIO_DEVICE_SET_IRQS");
}

// What the addon's watcher does for an interrupt: epoll (libuv's) says the
// eventfd is readable, read() takes the count. The interrupt comes from
// VFIO's loopback trigger, which signals the eventfd a device's MSI-X would.
void BenchIrq(const Space& space, const Spec& s) {
  const int dev = space.Device(Str(s, "bdf"));
  const int32_t efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  Check(efd, "eventfd");
  SetMsix(dev, u::VFIO_IRQ_SET_DATA_EVENTFD | u::VFIO_IRQ_SET_ACTION_TRIGGER, 1, &efd);
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  Check(ep, "epoll_create1");
  epoll_event want{};
  want.events = EPOLLIN;
  Check(::epoll_ctl(ep, EPOLL_CTL_ADD, efd, &want), "epoll_ctl");
  Measure(s, 1, [&] {
    SetMsix(dev, u::VFIO_IRQ_SET_DATA_NONE | u::VFIO_IRQ_SET_ACTION_TRIGGER, 1, nullptr);
    epoll_event ev;
    while (::epoll_wait(ep, &ev, 1, -1) < 0) {
      if (errno != EINTR) Fail("epoll_wait");
    }
    uint64_t count;
    if (::read(efd, &count, sizeof(count)) != sizeof(count)) Fail("read (eventfd)");
  });
  SetMsix(dev, u::VFIO_IRQ_SET_DATA_NONE | u::VFIO_IRQ_SET_ACTION_TRIGGER, 0, nullptr);
  ::close(ep);
  ::close(efd);
}

// A minimal io_uring: one submission and one completion ring.
class Uring {
 public:
  explicit Uring(unsigned entries) {
    io_uring_params p{};
    fd_ = static_cast<int>(::syscall(__NR_io_uring_setup, entries, &p));
    Check(fd_, "io_uring_setup");
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
    const bool single = p.features & IORING_FEAT_SINGLE_MMAP;
    if (single) sq_len = cq_len = std::max(sq_len, cq_len);
    uint8_t* sq = Map(sq_len, IORING_OFF_SQ_RING);
    uint8_t* cq = single ? sq : Map(cq_len, IORING_OFF_CQ_RING);
    sqes_ = reinterpret_cast<io_uring_sqe*>(Map(p.sq_entries * sizeof(io_uring_sqe), IORING_OFF_SQES));
    sq_tail_ = reinterpret_cast<unsigned*>(sq + p.sq_off.tail);
    sq_mask_ = *reinterpret_cast<unsigned*>(sq + p.sq_off.ring_mask);
    sq_array_ = reinterpret_cast<unsigned*>(sq + p.sq_off.array);
    cq_head_ = reinterpret_cast<unsigned*>(cq + p.cq_off.head);
    cq_tail_ = reinterpret_cast<unsigned*>(cq + p.cq_off.tail);
    cq_mask_ = *reinterpret_cast<unsigned*>(cq + p.cq_off.ring_mask);
    cqes_ = reinterpret_cast<io_uring_cqe*>(cq + p.cq_off.cqes);
  }

  void Read(int file, void* buf, unsigned length, uint64_t offset, uint64_t tag) {
    const unsigned tail = *sq_tail_;
    const unsigned i = tail & sq_mask_;
    io_uring_sqe& e = sqes_[i];
    std::memset(&e, 0, sizeof(e));
    e.opcode = IORING_OP_READ;
    e.fd = file;
    e.addr = reinterpret_cast<uintptr_t>(buf);
    e.len = length;
    e.off = offset;
    e.user_data = tag;
    sq_array_[i] = i;
    __atomic_store_n(sq_tail_, tail + 1, __ATOMIC_RELEASE);
    queued_++;
  }

  // Submits what is queued, waits for a completion, and hands each one to fn(cqe).
  template <typename Fn>
  void Complete(Fn fn) {
    long r = ::syscall(__NR_io_uring_enter, fd_, queued_, 1, IORING_ENTER_GETEVENTS, nullptr, 0);
    if (r < 0 && errno != EINTR) Fail("io_uring_enter");
    if (r > 0) queued_ -= static_cast<unsigned>(r);
    unsigned head = *cq_head_;
    const unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
    for (; head != tail; head++) fn(cqes_[head & cq_mask_]);
    __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
  }

 private:
  uint8_t* Map(size_t length, off_t what) const {
    void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, what);
    if (p == MAP_FAILED) Fail("mmap (io_uring)");
    return static_cast<uint8_t*>(p);
  }

  int fd_ = -1;
  unsigned queued_ = 0;
  io_uring_sqe* sqes_;
  io_uring_cqe* cqes_;
  unsigned *sq_tail_, *sq_array_, *cq_head_, *cq_tail_;
  unsigned sq_mask_, cq_mask_;
};

// Random 4 KiB reads through the kernel's block layer and driver, qd in flight.
void BenchBlockRead(const Spec& s) {
  const unsigned qd = static_cast<unsigned>(Num(s, "qd"));
  const uint64_t count = Num(s, "count"), blocks = Num(s, "span") / kPage;
  const int file = ::open(Str(s, "path").c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (file < 0) Fail("open " + Str(s, "path"));
  uint8_t* bufs = Allocate(qd * kPage, false);
  Uring ring(qd);
  uint64_t x = 0x9e3779b97f4a7c15u;
  auto random_offset = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return (x % blocks) * kPage;
  };
  Measure(s, count, [&] {
    uint64_t issued = 0, done = 0;
    for (; issued < qd && issued < count; issued++)
      ring.Read(file, bufs + issued * kPage, kPage, random_offset(), issued);
    while (done < count) {
      ring.Complete([&](const io_uring_cqe& c) {
        if (c.res != static_cast<int>(kPage)) {
          errno = c.res < 0 ? -c.res : 0;
          Fail("read " + Str(s, "path"));
        }
        done++;
        if (issued < count) {
          ring.Read(file, bufs + c.user_data * kPage, kPage, random_offset(), c.user_data);
          issued++;
        }
      });
    }
  });
  ::close(file);
}

std::vector<std::string> Split(const std::string& list) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < list.size()) {
    size_t end = list.find(',', at);
    if (end == std::string::npos) end = list.size();
    if (end > at) out.push_back(list.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

// The idle thread: it waits in pause() until the process exits.
void* Idle(void*) {
  for (;;) ::pause();
  return nullptr;
}

void StartIdleThread() {
  pthread_t idle;
  if (pthread_create(&idle, nullptr, Idle, nullptr) != 0)
    throw std::runtime_error("pthread_create (the idle thread)");
  pthread_detach(idle);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s iommufd|type1|none BDF[,BDF...]|- op=...,key=value...\n", argv[0]);
    return 2;
  }
  try {
    StartIdleThread();
    Space space(argv[1], std::strcmp(argv[2], "-") == 0 ? std::vector<std::string>{} : Split(argv[2]));
    for (int i = 3; i < argc; i++) {
      Spec s = ParseSpec(argv[i]);
      const std::string op = Str(s, "op");
      if (op == "map")
        BenchMap(space, s);
      else if (op == "physlist")
        BenchPhysList(space, s);
      else if (op == "mmio")
        BenchMmio(space, s);
      else if (op == "irq")
        BenchIrq(space, s);
      else if (op == "blockread")
        BenchBlockRead(s);
      else
        throw std::runtime_error("unknown op " + op);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "native-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
