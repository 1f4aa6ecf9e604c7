#pragma once
// Deterministic block-wide sum: warp shuffles in a fixed pattern, then one warp over the partial
// sums. Every thread of the block must call it; the result is valid in thread 0.
#include <cuda_runtime.h>

namespace mtl::kernels::cuda {

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

template <int Threads>
__device__ __forceinline__ float block_sum(float v) {
  static_assert(Threads % 32 == 0 && Threads <= 1024, "block size");
  __shared__ float partial[Threads / 32];
  v = warp_sum(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // the buffer may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = threadIdx.x < Threads / 32 ? partial[threadIdx.x] : 0.f;
  if (warp == 0) v = warp_sum(v);
  return v;
}

}  // namespace mtl::kernels::cuda
