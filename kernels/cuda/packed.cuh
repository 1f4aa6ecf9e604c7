#pragma once
// N consecutive floats moved as one access, as llm.c's Packed128: one 128-bit load or store for
// N = 4 (the caller guarantees 16-byte alignment), a plain float for N = 1. Kernels written over
// Packed<N> have one body for their vector and scalar paths.
#include <cuda_runtime.h>

namespace mtl::kernels::cuda {

template <int N>
struct Packed {
  static_assert(N == 1 || N == 4, "a float or a float4");
  float v[N];
  __device__ __forceinline__ float& operator[](int i) { return v[i]; }
  __device__ __forceinline__ float operator[](int i) const { return v[i]; }
};

template <int N>
__device__ __forceinline__ Packed<N> load_packed(const float* p) {
  Packed<N> out;
  if constexpr (N == 4) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    out.v[0] = q.x, out.v[1] = q.y, out.v[2] = q.z, out.v[3] = q.w;
  } else {
    out.v[0] = *p;
  }
  return out;
}

template <int N>
__device__ __forceinline__ void store_packed(float* p, const Packed<N>& q) {
  if constexpr (N == 4)
    *reinterpret_cast<float4*>(p) = make_float4(q.v[0], q.v[1], q.v[2], q.v[3]);
  else
    *p = q.v[0];
}

// The sum of the N values in a fixed pairwise order: (a + b) + (c + d).
template <int N>
__device__ __forceinline__ float pairwise_sum(const Packed<N>& q) {
  if constexpr (N == 4)
    return (q.v[0] + q.v[1]) + (q.v[2] + q.v[3]);
  else
    return q.v[0];
}

}  // namespace mtl::kernels::cuda
