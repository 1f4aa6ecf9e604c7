#pragma once
// Deterministic block-wide reductions: warp shuffles in a fixed pattern, then one warp over the
// warps' partial results. Every thread of the block must call them; the result is valid in
// thread 0.
#include <cuda_runtime.h>

#include <type_traits>

namespace mtl::kernels::cuda {

// The value of lane + offset. A type that is not arithmetic brings its own overload (found by
// argument-dependent lookup), shuffling its members.
template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
__device__ __forceinline__ T shfl_down(T v, int offset) {
  return __shfl_down_sync(0xffffffffu, v, offset);
}

template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, shfl_down(v, o));
  return v;
}

// identity: what lanes of warp 0 beyond the number of warps contribute.
template <int Threads, typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, Op op, T identity) {
  static_assert(Threads % 32 == 0 && Threads <= 1024, "block size");
  __shared__ T partial[Threads / 32];
  v = warp_reduce(v, op);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // the buffer may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < Threads / 32 ? partial[lane] : identity;
    v = warp_reduce(v, op);
  }
  return v;
}

struct Plus {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  return warp_reduce(v, Plus{});
}

// T = float for kernel reductions, double for the fixed-order final sums of the losses.
template <int Threads, typename T = float>
__device__ __forceinline__ T block_sum(T v) {
  return block_reduce<Threads>(v, Plus{}, T(0));
}

}  // namespace mtl::kernels::cuda
