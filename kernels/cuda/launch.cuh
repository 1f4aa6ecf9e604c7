#pragma once
// Launch helpers shared by the CUDA kernels.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/cuda_check.h"

namespace mtl::kernels::cuda {

constexpr int kThreads = 256;

// Enough blocks for a grid-stride loop over n items, capped so huge tensors loop instead.
inline int blocks_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(std::clamp<int64_t>(b, 1, 65535 * 8));
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Grid-stride loop over [0, n).
#define MTL_GRID_LOOP(i, n)                                                              \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

}  // namespace mtl::kernels::cuda
