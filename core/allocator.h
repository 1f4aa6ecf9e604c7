#pragma once
// Memory for tensors. CPU: 64-byte aligned. CUDA: a caching allocator that keeps freed blocks in
// size bins and hands them out again, so a training step after the first makes no cudaMalloc.
// One stream is used everywhere, so a block freed on it may be reused at once without events.
#include <cstddef>
#include <cstdint>

namespace mtl {

void* cpu_allocate(size_t nbytes);
void cpu_deallocate(void* p);

// Debugging and tests: fill every new allocation with garbage, so an output element a kernel forgot
// shows up. CUDA memory gets 0xFF bytes (NaN in floating point, -1 in integers); CPU memory 0x7F
// bytes (3.4e38 as a float, 1.4e306 as a double, 2139062143 as an int32), so an element that a
// CUDA kernel and its CPU twin both leave unwritten still differs between them.
void set_poison_allocations(bool on);
bool poison_allocations();
constexpr unsigned char kCpuPoison = 0x7f, kCudaPoison = 0xff;

namespace cuda {

struct AllocatorStats {
  size_t allocated = 0;       // bytes in live blocks (rounded sizes)
  size_t reserved = 0;        // bytes obtained from cudaMalloc and not yet returned
  size_t peak_allocated = 0;  // high-water mark of `allocated` since the last reset
  uint64_t device_mallocs = 0;  // cudaMalloc calls made
  uint64_t cache_hits = 0;      // requests served from the cache
};

void* allocate(size_t nbytes);  // throws mtl::Error when the device is out of memory
void deallocate(void* p);
AllocatorStats allocator_stats();
void reset_peak();
void empty_cache();              // returns every cached block to the driver
void set_caching(bool enabled);  // off: every free goes straight to cudaFree (debugging)
bool caching();
size_t round_size(size_t nbytes);  // the bin a request falls in

}  // namespace cuda
}  // namespace mtl
