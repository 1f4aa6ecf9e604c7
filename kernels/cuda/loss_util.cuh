#pragma once
// Helpers shared by the loss and metric kernels: double-precision block sums for the fixed-order
// final reductions, the bad-label slot, vector loads over pixels, and launcher scratch memory.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/allocator.h"
#include "kernels/labels.h"

namespace mtl::kernels::cuda {

__device__ __forceinline__ double warp_sum_f64(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// Deterministic block-wide sum in double; every thread must call it; the result is valid in
// thread 0.
template <int Threads>
__device__ __forceinline__ double block_sum_f64(double v) {
  static_assert(Threads % 32 == 0 && Threads <= 1024, "block size");
  __shared__ double partial[Threads / 32];
  v = warp_sum_f64(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // the buffer may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = threadIdx.x < Threads / 32 ? partial[threadIdx.x] : 0.0;
  if (warp == 0) v = warp_sum_f64(v);
  return v;
}

// Keeps the smallest offending flat pixel index, so the label reported does not depend on thread
// scheduling. The slot starts as kNoBadLabel (all ones), larger than any index when unsigned.
__device__ __forceinline__ void record_bad(int64_t* bad, int64_t i) {
  atomicMin(reinterpret_cast<unsigned long long*>(bad), static_cast<unsigned long long>(i));
}

// V consecutive floats: one 16-byte access for V = 4 (the caller guarantees alignment).
template <int V>
__device__ __forceinline__ void load_vec(float (&v)[V], const float* p) {
  if constexpr (V == 4) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
  } else {
    for (int i = 0; i < V; ++i) v[i] = p[i];
  }
}

template <int V>
__device__ __forceinline__ void store_vec(float* p, const float (&v)[V]) {
  if constexpr (V == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  } else {
    for (int i = 0; i < V; ++i) p[i] = v[i];
  }
}

// Device memory for partial sums, from the caching allocator, for one launcher call. Everything
// runs on the one mtl stream, so the block can be handed back as soon as the kernels that use it
// are enqueued: whoever gets it next runs after them.
class Scratch {
 public:
  explicit Scratch(size_t nbytes) : p_(nbytes ? mtl::cuda::allocate(nbytes) : nullptr) {}
  ~Scratch() {
    if (p_) mtl::cuda::deallocate(p_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_;
};

}  // namespace mtl::kernels::cuda
