#include "core/allocator.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <map>
#include <mutex>
#include <unordered_map>

#include "core/cuda_check.h"
#include "core/cuda_context.h"
#include "core/error.h"

namespace mtl {

namespace {
bool g_poison = std::getenv("MTL_POISON") != nullptr;

// A training step frees and allocates the same tensor sizes over and over. By default glibc serves
// the larger ones with mmap and returns freed memory at the top of the heap to the kernel, so the
// next step faults every page in again (about 10,000 page faults per second in CPU training).
// Serving everything below glibc's maximum mmap threshold (32 MiB on 64-bit) from the heap and not
// trimming it keeps those pages mapped: the heap stays at the step's peak, as a caching allocator's
// would. Set once, before the first tensor; the environment's MALLOC_*_ variables still win.
bool keep_heap_pages() {
#if defined(__GLIBC__)
  if (!std::getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 32 << 20);
  if (!std::getenv("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  return true;
}
}  // namespace

void set_poison_allocations(bool on) { g_poison = on; }
bool poison_allocations() { return g_poison; }

void* cpu_allocate(size_t nbytes) {
  static const bool tuned = keep_heap_pages();
  (void)tuned;
  size_t n = (std::max<size_t>(nbytes, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, n);
  MTL_CHECK(p != nullptr, "out of host memory allocating ", nbytes, " bytes");
  if (g_poison) std::memset(p, kCpuPoison, n);
  return p;
}

void cpu_deallocate(void* p) { std::free(p); }

namespace cuda {

namespace {

constexpr size_t kSmall = 1 << 20;      // below 1 MiB: 512-byte bins
constexpr size_t kLargeBin = 2 << 20;   // above: 2 MiB bins

struct Caching {
  std::mutex mu;
  bool enabled = std::getenv("MTL_CUDA_NO_CACHE") == nullptr;
  std::multimap<size_t, void*> free_blocks;  // size -> block
  std::unordered_map<void*, size_t> live;    // block -> size
  AllocatorStats stats;

  void release_cached() {
    for (auto& [size, p] : free_blocks) {
      cudaFree(p);
      stats.reserved -= size;
    }
    free_blocks.clear();
  }
};

Caching& cache() {
  static Caching* c = new Caching;  // leaked on purpose: frees during static destruction are no-ops
  return *c;
}

}  // namespace

size_t round_size(size_t n) {
  if (n == 0) n = 1;
  if (n < kSmall) return (n + 511) / 512 * 512;
  return (n + kLargeBin - 1) / kLargeBin * kLargeBin;
}

void* allocate(size_t nbytes) {
  require();
  auto& c = cache();
  size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(c.mu);
  void* p = nullptr;
  if (c.enabled) {
    auto it = c.free_blocks.find(size);
    if (it != c.free_blocks.end()) {
      p = it->second;
      c.free_blocks.erase(it);
      ++c.stats.cache_hits;
    }
  }
  if (!p) {
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      c.release_cached();  // give cached blocks back and try once more
      e = cudaMalloc(&p, size);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw Error(mtl::detail::concat("CUDA out of memory allocating ", nbytes, " bytes (",
                                      c.stats.allocated, " bytes in use, ", c.stats.reserved,
                                      " reserved): ", cudaGetErrorString(e)));
    }
    c.stats.reserved += size;
    ++c.stats.device_mallocs;
  }
  if (g_poison) MTL_CUDA_CHECK(cudaMemsetAsync(p, kCudaPoison, size, stream()));
  c.live[p] = size;
  c.stats.allocated += size;
  if (c.stats.allocated > c.stats.peak_allocated) c.stats.peak_allocated = c.stats.allocated;
  return p;
}

void deallocate(void* p) {
  if (!p) return;
  auto& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.live.find(p);
  MTL_ASSERT(it != c.live.end(), "freeing an unknown CUDA block");
  size_t size = it->second;
  c.live.erase(it);
  c.stats.allocated -= size;
  if (c.enabled) {
    c.free_blocks.emplace(size, p);
  } else {
    cudaFree(p);
    c.stats.reserved -= size;
  }
}

AllocatorStats allocator_stats() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return cache().stats;
}

void reset_peak() {
  std::lock_guard<std::mutex> lock(cache().mu);
  cache().stats.peak_allocated = cache().stats.allocated;
}

void empty_cache() {
  if (!available()) return;
  synchronize();
  std::lock_guard<std::mutex> lock(cache().mu);
  cache().release_cached();
}

void set_caching(bool enabled) {
  if (!enabled) empty_cache();
  std::lock_guard<std::mutex> lock(cache().mu);
  cache().enabled = enabled;
}

bool caching() { return cache().enabled; }

}  // namespace cuda
}  // namespace mtl
