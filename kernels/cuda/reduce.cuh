#pragma once
// Deterministic block-wide sum: warp shuffles in a fixed pattern, then one warp over the partial
// sums. Every thread of the block must call it; the result is valid in thread 0.
#include <cuda_runtime.h>

namespace mtl::kernels::cuda {

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// T = float for kernel reductions, double for the fixed-order final sums of the losses.
template <int Threads, typename T = float>
__device__ __forceinline__ T block_sum(T v) {
  static_assert(Threads % 32 == 0 && Threads <= 1024, "block size");
  __shared__ T partial[Threads / 32];
  v = warp_sum(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // the buffer may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = threadIdx.x < Threads / 32 ? partial[threadIdx.x] : T(0);
  if (warp == 0) v = warp_sum(v);
  return v;
}

}  // namespace mtl::kernels::cuda
