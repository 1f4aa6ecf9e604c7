#pragma once
// Launch helpers shared by the CUDA kernels.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "core/cuda_check.h"

namespace mtl::kernels::cuda {

constexpr int kThreads = 256;

// Enough blocks for a grid-stride loop over n items, capped so huge tensors loop instead.
inline int blocks_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(std::clamp<int64_t>(b, 1, 65535 * 8));
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Calls f with std::true_type or std::false_type, so that one launch line serves both
// instantiations of a kernel templated on a bool: dispatch_bool(vec, [&](auto v) {
// MTL_LAUNCH(kernel<v>, ...); }).
template <typename F>
void dispatch_bool(bool b, F&& f) {
  if (b)
    f(std::true_type{});
  else
    f(std::false_type{});
}

// Every kernel launch: MTL_LAUNCH(kernel, grid, block, shared_bytes, stream, args...). Under nvcc it
// is the triple-chevron launch; built by the host compiler, it runs the kernel on the CPU execution
// layer of the tests (tests/simt), which defines MTL_SIMT_LAUNCH.
#if defined(__CUDACC__)
#define MTL_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
  kernel<<<grid, block, shared_bytes, stream>>>(__VA_ARGS__)
#else
#define MTL_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
  MTL_SIMT_LAUNCH(kernel, grid, block, shared_bytes, stream, __VA_ARGS__)
#endif

// The block's dynamic shared memory (the launch's shared_bytes) as T*. A host compiler cannot
// give `extern __shared__ T name[];` its storage, so kernels ask for it here.
template <typename T>
__device__ __forceinline__ T* dynamic_shared() {
#if defined(__CUDACC__)
  extern __shared__ __align__(16) unsigned char mtl_dynamic_shared[];
  return reinterpret_cast<T*>(mtl_dynamic_shared);
#else
  return static_cast<T*>(mtl_simt_dynamic_shared());
#endif
}

// Grid-stride loop over [0, n).
#define MTL_GRID_LOOP(i, n)                                                              \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// The same loop with an index of type I (int32_t or int64_t, from dispatch_index).
#define MTL_GRID_LOOP_AS(I, i, n)                                            \
  for (I i = static_cast<I>(blockIdx.x * blockDim.x + threadIdx.x); i < (n); \
       i += static_cast<I>(blockDim.x * gridDim.x))

// The largest element count that 32-bit index arithmetic serves: every index below it and every
// step of a grid-stride loop past it (at most blocks_for's cap times 1024 threads) fit in an int32.
constexpr int64_t kMaxIndex32 = INT32_MAX - int64_t{65535} * 8 * 1024;

// Calls f with int32_t{} when `n` (the largest element count or offset the kernel computes)
// allows 32-bit index arithmetic, int64_t{} otherwise: a 64-bit division or modulo per element is
// a long instruction sequence on a GPU, a 32-bit one a few instructions.
template <typename F>
void dispatch_index(int64_t n, F&& f) {
  if (n <= kMaxIndex32)
    f(int32_t{});
  else
    f(int64_t{});
}

}  // namespace mtl::kernels::cuda
