// The C side of the host lane's instruction counts (instructions.ts): one
// metric's operations, a given number of times, under the fake kernel, and
// nothing else to time or check; callgrind counts what they executed.
//
//   c-count map4k|link1024 N
//
// N: map + unmap pairs (map4k) or links of the 1,024 pieces (link1024), made
// in rounds of at most 1,000 as the library's side makes them.
// Build (build.ts): c++ -std=c++17 -O2 -o c-count c-count.cc -lpthread
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "c-dma-ops.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: c-count map4k|link1024 N\n");
    return 2;
  }
  const uint64_t n = std::strtoull(argv[2], nullptr, 10);
  try {
    const cside::Ioas a = cside::OpenIoas();
    const cside::DmaWork w;
    if (std::strcmp(argv[1], "map4k") == 0) {
      for (uint64_t done = 0; done < n; done += 1000)
        w.MapPairs(a, w.kMapAt, n - done < 1000 ? n - done : 1000);
    } else if (std::strcmp(argv[1], "link1024") == 0) {
      w.Links(a, n);
    } else {
      std::fprintf(stderr, "c-count: no metric %s\n", argv[1]);
      return 2;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "c-count: %s\n", e.what());
    return 1;
  }
  return 0;
}
