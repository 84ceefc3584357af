// The C side of the host lane: the same system calls the library makes for
// each metric, through the same fake kernel (run with
// LD_PRELOAD=fake-kernel.so), timed the same way, so that library minus C is
// what the library adds.
//
//   c-loop sysfs=DIR bdf=BDF samples=N warmup_ms=N map=N link=N mmio=N irq_event=N irq_trigger=N
//
// It opens the device as AddressSpace.open + openDevice do (iommufd: an IOAS,
// the cdev named in sysfs, bound and attached; the IOVA ranges read), mmaps
// BAR0, enables MSI-X vector 0 on a non-blocking eventfd watched by epoll,
// then prints one JSON line {"id","ns":[...]} per metric (CPU ns of the
// process per operation; irq.trigger.p50: the median latency, wall time, of
// each sample) and {"done":true}. Before anything it starts one idle thread, as
// Node has threads: the kernel charges a process whose fd table is shared
// more for each fd lookup. Every ioctl is checked, and around each metric the
// fake kernel's counters must show exactly the calls made; else it exits 1.
//
// Structs and ioctl numbers come from the project's own native/uapi headers.
// Build: c++ -std=c++17 -O2 -o c-loop c-loop.cc -lpthread
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../native/uapi/iommufd.h"
#include "../../native/uapi/vfio.h"
#include "c-dma-ops.h"
#include "fake-device.h"

namespace u = nvfio::uapi;

namespace {

using cside::Allocate;
using cside::CpuNs;
using cside::kPage;
using cside::Must;
constexpr uint64_t kReadAt = 0x40;
constexpr uint64_t kWriteAt = 0x80;

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

// ---------------------------------------------------------------------------
// The plan (plan.ts) and the fake kernel's counters
// ---------------------------------------------------------------------------

struct Plan {
  std::string sysfs, bdf;
  int samples = 0;
  double warmup_ms = 0;
  uint64_t map = 0, link = 0, mmio = 0, irq_event = 0, irq_trigger = 0;
};

Plan ParsePlan(int argc, char** argv) {
  std::map<std::string, std::string> words;
  for (int i = 1; i < argc; i++) {
    const char* eq = std::strchr(argv[i], '=');
    if (!eq) throw std::runtime_error(std::string("arguments are key=value words, not ") + argv[i]);
    words[std::string(argv[i], static_cast<size_t>(eq - argv[i]))] = eq + 1;
  }
  auto text = [&](const char* key) {
    auto it = words.find(key);
    if (it == words.end() || it->second.empty()) throw std::runtime_error(std::string(key) + "= is missing");
    return it->second;
  };
  auto count = [&](const char* key) {
    uint64_t n = std::strtoull(text(key).c_str(), nullptr, 10);
    if (n == 0) throw std::runtime_error(std::string(key) + " must be a positive integer");
    return n;
  };
  Plan p;
  p.sysfs = text("sysfs");
  p.bdf = text("bdf");
  p.samples = static_cast<int>(count("samples"));
  p.warmup_ms = static_cast<double>(count("warmup_ms"));
  p.map = count("map");
  p.link = count("link");
  p.mmio = count("mmio");
  p.irq_event = count("irq_event");
  p.irq_trigger = count("irq_trigger");
  return p;
}

std::string ReadStats() {
  int fd = ::open(fake::kStatsPath, O_RDONLY | O_CLOEXEC);
  Must(fd, std::string("the fake kernel is not in use: open ") + fake::kStatsPath);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  ::close(fd);
  return out;
}

// A number in the stats JSON: `"section":{... "name":N` (section empty: top level).
uint64_t Stat(const std::string& json, const std::string& section, const std::string& name) {
  size_t from = 0;
  if (!section.empty()) {
    from = json.find("\"" + section + "\":{");
    if (from == std::string::npos) return 0;
  }
  size_t end = section.empty() ? json.size() : json.find('}', from);
  size_t at = json.find("\"" + name + "\":", from);
  if (at == std::string::npos || at > end) return 0;
  return std::strtoull(json.c_str() + at + name.size() + 3, nullptr, 10);
}

// The calls a metric must make per run, and the loopback signals.
struct Expect {
  std::vector<std::pair<std::string, uint64_t>> calls;
  uint64_t signals = 0;
  uint64_t fires = 0;
};

const char* const kCounted[] = {"IOMMU_IOAS_MAP", "IOMMU_IOAS_UNMAP", "VFIO_DEVICE_SET_IRQS",
                                "IOMMU_IOAS_IOVA_RANGES"};

void CheckStats(const std::string& id, const std::string& before, const std::string& after, uint64_t runs,
                const Expect& e) {
  for (const char* name : kCounted) {
    uint64_t want = 0;
    for (auto& [n, v] : e.calls) {
      if (n == name) want = v * runs;
    }
    uint64_t got = Stat(after, "calls", name) - Stat(before, "calls", name);
    if (got != want) {
      throw std::runtime_error(id + ": the fake kernel saw " + std::to_string(got) + " " + name +
                               ", expected " + std::to_string(want));
    }
    if (Stat(after, "failures", name) != Stat(before, "failures", name))
      throw std::runtime_error(id + ": " + name + " failed");
  }
  for (auto [what, want] : {std::pair{"signals", e.signals}, std::pair{"fires", e.fires}}) {
    uint64_t got = Stat(after, "", what) - Stat(before, "", what);
    if (got != want * runs) throw std::runtime_error(id + ": " + std::to_string(got) + " eventfd " + what);
  }
}

void Emit(const std::string& id, const std::vector<double>& ns) {
  std::string line = "{\"id\":\"" + id + "\",\"ns\":[";
  for (size_t i = 0; i < ns.size(); i++) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%s%.3f", i ? "," : "", ns[i]);
    line += buf;
  }
  std::printf("%s]}\n", line.c_str());
  std::fflush(stdout);
}

// The warm-up (at least twice, for warmup_ms), then `samples` runs; `sample`
// returns ns per operation.
void Measure(const Plan& p, const std::string& id, const Expect& e, const std::function<double()>& sample) {
  std::string before = ReadStats();
  uint64_t runs = 0;
  const uint64_t until = NowNs() + static_cast<uint64_t>(p.warmup_ms * 1e6);
  for (; runs < 2 || NowNs() < until; runs++) sample();
  std::vector<double> ns;
  for (int i = 0; i < p.samples; i++, runs++) ns.push_back(sample());
  CheckStats(id, before, ReadStats(), runs, e);
  Emit(id, ns);
}

// CPU ns per operation of `ops` operations done by `run`.
std::function<double()> Timed(uint64_t ops, std::function<void()> run) {
  return [ops, run = std::move(run)]() {
    uint64_t t0 = CpuNs();
    run();
    return double(CpuNs() - t0) / double(ops);
  };
}

// ---------------------------------------------------------------------------
// The device, as the library opens it
// ---------------------------------------------------------------------------

// The VFIO cdev sysfs names: vfio-dev/vfioN.
std::string CdevOf(const Plan& p) {
  std::string dir = p.sysfs + "/bus/pci/devices/" + p.bdf + "/vfio-dev";
  DIR* d = ::opendir(dir.c_str());
  Must(d ? 0 : -1, "opendir " + dir);
  std::string name;
  while (dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, "vfio", 4) == 0) name = e->d_name;
  }
  ::closedir(d);
  if (name.empty()) throw std::runtime_error(dir + " has no vfioN");
  return "/dev/vfio/devices/" + name;
}

struct Device {
  cside::Ioas ioas;
  int fd = -1;
  volatile uint8_t* bar0 = nullptr;
  int eventfd = -1, epoll = -1;
};

// A VFIO_DEVICE_SET_IRQS argument for MSI-X vector 0 with ACTION_TRIGGER
// and `data_type`, its payload (an eventfd, or a bool) after the header.
std::vector<uint8_t> MsixSet(uint32_t data_type, const void* payload, size_t size) {
  std::vector<uint8_t> buf(sizeof(u::vfio_irq_set) + size);
  auto* set = reinterpret_cast<u::vfio_irq_set*>(buf.data());
  set->argsz = static_cast<uint32_t>(buf.size());
  set->flags = data_type | u::VFIO_IRQ_SET_ACTION_TRIGGER;
  set->index = u::VFIO_PCI_MSIX_IRQ_INDEX;
  set->start = 0;
  set->count = 1;
  std::memcpy(set->data(), payload, size);
  return buf;
}

Device Open(const Plan& p) {
  Device d;
  d.ioas = cside::OpenIoas();
  std::string cdev = CdevOf(p);
  d.fd = Must(::open(cdev.c_str(), O_RDWR | O_CLOEXEC), "open " + cdev);
  u::vfio_device_bind_iommufd bind{};
  bind.argsz = sizeof(bind);
  bind.iommufd = d.ioas.iommufd;
  Must(::ioctl(d.fd, u::VFIO_DEVICE_BIND_IOMMUFD, &bind), "VFIO_DEVICE_BIND_IOMMUFD");
  u::vfio_device_attach_iommufd_pt attach{};
  attach.argsz = sizeof(attach);
  attach.pt_id = d.ioas.id;
  Must(::ioctl(d.fd, u::VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach), "VFIO_DEVICE_ATTACH_IOMMUFD_PT");
  // The IOVA ranges, as the library's allocator reads them: grow on EMSGSIZE.
  std::vector<u::iommu_iova_range> ranges(1);
  for (;;) {
    u::iommu_ioas_iova_ranges cmd{};
    cmd.size = sizeof(cmd);
    cmd.ioas_id = d.ioas.id;
    cmd.num_iovas = static_cast<uint32_t>(ranges.size());
    cmd.allowed_iovas = reinterpret_cast<uintptr_t>(ranges.data());
    if (::ioctl(d.ioas.iommufd, u::IOMMU_IOAS_IOVA_RANGES, &cmd) == 0) break;
    if (errno != EMSGSIZE || cmd.num_iovas <= ranges.size()) Must(-1, "IOMMU_IOAS_IOVA_RANGES");
    ranges.resize(cmd.num_iovas);
  }
  u::vfio_region_info region{};
  region.argsz = sizeof(region);
  region.index = u::VFIO_PCI_BAR0_REGION_INDEX;
  Must(::ioctl(d.fd, u::VFIO_DEVICE_GET_REGION_INFO, &region), "VFIO_DEVICE_GET_REGION_INFO");
  if (!(region.flags & u::VFIO_REGION_INFO_FLAG_MMAP)) throw std::runtime_error("BAR0 is not mmap-capable");
  void* bar = ::mmap(nullptr, region.size, PROT_READ | PROT_WRITE, MAP_SHARED, d.fd,
                     static_cast<off_t>(region.offset));
  Must(bar == MAP_FAILED ? -1 : 0, "mmap BAR0");
  d.bar0 = static_cast<volatile uint8_t*>(bar);
  if (*reinterpret_cast<volatile uint32_t*>(d.bar0) != fake::kBar0Ident)
    throw std::runtime_error("BAR0 + 0 is not the fake device's");
  // MSI-X vector 0 on an eventfd, as DeviceInterrupts.enableMsix(1); epoll as libuv watches it.
  u::vfio_irq_info irq{};
  irq.argsz = sizeof(irq);
  irq.index = u::VFIO_PCI_MSIX_IRQ_INDEX;
  Must(::ioctl(d.fd, u::VFIO_DEVICE_GET_IRQ_INFO, &irq), "VFIO_DEVICE_GET_IRQ_INFO");
  d.eventfd = Must(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd");
  std::vector<uint8_t> enable = MsixSet(u::VFIO_IRQ_SET_DATA_EVENTFD, &d.eventfd, sizeof(int32_t));
  Must(::ioctl(d.fd, u::VFIO_DEVICE_SET_IRQS, enable.data()), "VFIO_DEVICE_SET_IRQS (enable MSI-X)");
  d.epoll = Must(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = d.eventfd;
  Must(::epoll_ctl(d.epoll, EPOLL_CTL_ADD, d.eventfd, &ev), "epoll_ctl");
  return d;
}

// ---------------------------------------------------------------------------
// The metrics
// ---------------------------------------------------------------------------

void DmaMetrics(const Plan& p, const Device& d) {
  const uint64_t n = p.map;
  const Expect pair{{{"IOMMU_IOAS_MAP", n}, {"IOMMU_IOAS_UNMAP", n}}};
  const cside::DmaWork w;
  Measure(p, "map4k", pair, Timed(n, [&] { w.MapPairs(d.ioas, w.kMapAt, n); }));
  w.SetLive(d.ioas, true);
  Measure(p, "map4k.live1000", pair, Timed(n, [&] { w.MapPairs(d.ioas, w.kAfterLive, n); }));
  w.SetLive(d.ioas, false);
  const uint64_t links = p.link;
  Measure(p, "link1024", {{{"IOMMU_IOAS_MAP", links * cside::kFragments}, {"IOMMU_IOAS_UNMAP", links}}},
          Timed(links * cside::kFragments, [&] { w.Links(d.ioas, links); }));
}

uint64_t sink = 0;

template <typename T>
void MmioRead(const Plan& p, const Device& d, const char* bits) {
  const uint64_t n = p.mmio;
  auto* reg = reinterpret_cast<volatile T*>(d.bar0 + kReadAt);
  Measure(p, std::string("mmio.read") + bits, {}, Timed(n, [&] {
            T x = 0;
            for (uint64_t i = 0; i < n; i++) x ^= *reg;
            sink ^= x;
          }));
}

template <typename T>
void MmioWrite(const Plan& p, const Device& d, const char* bits, T value) {
  const uint64_t n = p.mmio;
  auto* reg = reinterpret_cast<volatile T*>(d.bar0 + kWriteAt);
  Measure(p, std::string("mmio.write") + bits, {}, Timed(n, [&] {
            for (uint64_t i = 0; i < n; i++) *reg = value;
          }));
}

// In the library's order: the reads, then the writes.
void MmioMetrics(const Plan& p, const Device& d) {
  MmioRead<uint8_t>(p, d, "8");
  MmioRead<uint16_t>(p, d, "16");
  MmioRead<uint32_t>(p, d, "32");
  MmioRead<uint64_t>(p, d, "64");
  MmioWrite<uint8_t>(p, d, "8", 0x5a);
  MmioWrite<uint16_t>(p, d, "16", 0x5aa5);
  MmioWrite<uint32_t>(p, d, "32", 0x5aa5a55a);
  MmioWrite<uint64_t>(p, d, "64", 0x5aa5a55a5aa5a55aull);
  if (*reinterpret_cast<volatile uint64_t*>(d.bar0 + kWriteAt) != 0x5aa5a55a5aa5a55aull) {
    throw std::runtime_error("BAR0 does not hold what was written");
  }
}

// One wake-up as libuv has it: epoll_wait, then the watcher's read of the counter.
void Wait(const Device& d) {
  epoll_event events[1024];
  int n;
  do {
    n = ::epoll_wait(d.epoll, events, 1024, -1);
  } while (n < 0 && errno == EINTR);
  if (Must(n, "epoll_wait") != 1) throw std::runtime_error("epoll_wait: not one event");
  uint64_t count;
  Must(static_cast<int>(::read(d.eventfd, &count, sizeof(count))), "read (eventfd)");
  if (count != 1)
    throw std::runtime_error("the eventfd counted " + std::to_string(count) + " interrupts at once");
}

void IrqMetrics(const Plan& p, const Device& d) {
  // The fake kernel writes the eventfd as each epoll_wait begins (armed for `events`).
  const uint64_t events = p.irq_event;
  const std::string arm =
      std::string(fake::kFirePath) + "/" + std::to_string(d.eventfd) + "/" + std::to_string(events);
  Measure(p, "irq.event", {{}, 0, events}, [&] {
    ::close(Must(::open(arm.c_str(), O_RDONLY | O_CLOEXEC), "open " + arm));
    uint64_t t0 = CpuNs();
    for (uint64_t i = 0; i < events; i++) Wait(d);
    return double(CpuNs() - t0) / double(events);
  });

  const uint64_t triggers = p.irq_trigger;
  const uint8_t fire = 1;
  std::vector<uint8_t> trigger = MsixSet(u::VFIO_IRQ_SET_DATA_BOOL, &fire, 1);
  std::vector<double> latencies(triggers);
  Measure(p, "irq.trigger.p50", {{{"VFIO_DEVICE_SET_IRQS", triggers}}, triggers, 0}, [&] {
    for (uint64_t i = 0; i < triggers; i++) {
      uint64_t t0 = NowNs();
      Must(::ioctl(d.fd, u::VFIO_DEVICE_SET_IRQS, trigger.data()), "VFIO_DEVICE_SET_IRQS (trigger)");
      Wait(d);
      latencies[i] = double(NowNs() - t0);
    }
    std::sort(latencies.begin(), latencies.end());
    size_t mid = latencies.size() / 2;
    return latencies.size() % 2 ? latencies[mid] : (latencies[mid - 1] + latencies[mid]) / 2;
  });
}

void* Idle(void*) {
  int fds[2];
  if (::pipe(fds) == 0) {
    char c;
    while (::read(fds[0], &c, 1) < 0 && errno == EINTR) {
    }
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    pthread_t idle;
    if (pthread_create(&idle, nullptr, Idle, nullptr) != 0) throw std::runtime_error("pthread_create");
    pthread_detach(idle);
    Plan p = ParsePlan(argc, argv);
    ReadStats();  // fails first when the shim is missing
    Device d = Open(p);
    DmaMetrics(p, d);
    MmioMetrics(p, d);
    IrqMetrics(p, d);
    std::printf("{\"done\":true,\"sink\":%llu}\n", static_cast<unsigned long long>(sink & 1));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "c-loop: %s\n", e.what());
    return 1;
  }
}
