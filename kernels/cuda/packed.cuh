#pragma once
// Storage types and packed accesses shared by the kernels.
//
// Activations are stored as float or bfloat16 (mixed precision); kernels load either into float,
// compute in float and round once when they store (to nearest even), which is what the CPU twins
// emulate (ops/dispatch.h). mtl::bf16 (the host type of the interfaces) and __nv_bfloat16 share
// one bit layout; dev() converts pointers between them.
//
// Packed<N>: N consecutive values moved as one access, as llm.c's Packed128, held as floats in
// registers: one 128-bit load or store of four floats, or one 64-bit access of four bfloat16 (the
// caller guarantees 16-byte alignment in both cases), or a single element for N = 1. Kernels
// written over Packed<N> have one body for their vector and scalar paths and for both types.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "core/bfloat16.h"

namespace mtl::kernels::cuda {

template <typename T>
struct Dev {
  using type = T;
};
template <>
struct Dev<bf16> {
  using type = __nv_bfloat16;
};
template <typename T>
using dev_t = typename Dev<T>::type;

template <typename T>
dev_t<T>* dev(T* p) {
  return reinterpret_cast<dev_t<T>*>(p);
}
template <typename T>
const dev_t<T>* dev(const T* p) {
  return reinterpret_cast<const dev_t<T>*>(p);
}

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __float2bfloat16_rn(v);
  else
    return v;
}

template <int N>
struct Packed {
  static_assert(N == 1 || N == 4, "one value or four");
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

// Four bfloat16 as one 64-bit access.
struct alignas(8) Bf16x4 {
  __nv_bfloat162 lo, hi;
};

template <int N>
__device__ __forceinline__ Packed<N> load_packed(const __nv_bfloat16* p) {
  Packed<N> out;
  if constexpr (N == 4) {
    const Bf16x4 q = *reinterpret_cast<const Bf16x4*>(p);
    out.v[0] = __low2float(q.lo), out.v[1] = __high2float(q.lo);
    out.v[2] = __low2float(q.hi), out.v[3] = __high2float(q.hi);
  } else {
    out.v[0] = __bfloat162float(*p);
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

template <int N>
__device__ __forceinline__ void store_packed(__nv_bfloat16* p, const Packed<N>& q) {
  if constexpr (N == 4) {
    *reinterpret_cast<Bf16x4*>(p) =
        Bf16x4{__floats2bfloat162_rn(q.v[0], q.v[1]), __floats2bfloat162_rn(q.v[2], q.v[3])};
  } else {
    *p = __float2bfloat16_rn(q.v[0]);
  }
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
