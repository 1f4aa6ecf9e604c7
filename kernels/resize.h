#pragma once
// Spatial resizing of contiguous NCHW buffers with PyTorch's index arithmetic: 'nearest'
// (F.interpolate(mode='nearest') given an output size) and 'bilinear' with align_corners=false.
// Both are separable: an output row reads one (nearest) or two (bilinear) input rows, and the
// same for columns. Backward kernels are gathers: each input pixel finds, by binary search over
// the monotone source-index function, the output rows and columns that read it and sums their
// weighted gradients in a fixed order (deterministic, no atomics). The MTL_HD helpers below are
// the single definition of the index arithmetic for the CPU and CUDA files.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "core/bfloat16.h"
#include "kernels/layout.h"

namespace mtl::kernels {

struct ResizeGeom {
  int64_t planes = 0;  // N*C
  int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
};

namespace resize_detail {

// a*b and a-b without fused multiply-add contraction, so that device code rounds exactly as the
// host code (and PyTorch's CPU kernels) do.
MTL_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
MTL_HD float sub_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
MTL_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
MTL_HD double sub_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}

// PyTorch's scale when only the output size is given: in / out in the compute type.
template <typename A>
MTL_HD A scale_of(int64_t in, int64_t out) {
  return static_cast<A>(in) / static_cast<A>(out);
}

// The index helpers compute in the integer type I of their arguments (int64_t on the CPU; int32_t
// in CUDA kernels over tensors small enough, see kernels/cuda/launch.cuh).

// 'nearest': src = min(floor(dst * scale), in - 1) with a float scale whatever the data type (as
// PyTorch's nearest_idx).
template <typename I>
MTL_HD I nearest_src(I dst, float scale, I in) {
  const I s = static_cast<I>(floorf(mul_rn(static_cast<float>(dst), scale)));
  return s < in - 1 ? s : in - 1;
}

// First dst in [0, out) with nearest_src(dst) >= v, or out.
template <typename I>
MTL_HD I nearest_first_reading(I v, float scale, I in, I out) {
  I lo = 0, hi = out;
  while (lo < hi) {
    const I mid = lo + (hi - lo) / 2;
    if (nearest_src(mid, scale, in) >= v)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

// 'bilinear', align_corners=false, one axis: output `dst` reads input i0 with weight l0 and i1
// (i0 + 1, clamped to the last pixel) with weight l1.
template <typename A, typename I = int64_t>
struct LinearTap {
  I i0, i1;
  A l0, l1;
};

template <typename A, typename I>
MTL_HD LinearTap<A, I> linear_tap(I dst, A scale, I in) {
  A src = sub_rn(mul_rn(scale, static_cast<A>(dst) + static_cast<A>(0.5)), static_cast<A>(0.5));
  if (src < static_cast<A>(0)) src = static_cast<A>(0);
  const I i0 = static_cast<I>(src);
  const A l1 = src - static_cast<A>(i0);
  return {i0, i0 < in - 1 ? i0 + 1 : i0, static_cast<A>(1) - l1, l1};
}

// First dst in [0, out) with linear_tap(dst).i0 >= v, or out.
template <typename A, typename I>
MTL_HD I linear_first_reading(I v, A scale, I in, I out) {
  I lo = 0, hi = out;
  while (lo < hi) {
    const I mid = lo + (hi - lo) / 2;
    if (linear_tap(mid, scale, in).i0 >= v)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

// Weight with which output `dst` reads input `i` along one axis (0 when it does not).
template <typename A, typename I>
MTL_HD A linear_weight(const LinearTap<A, I>& t, I i) {
  return (t.i0 == i ? t.l0 : static_cast<A>(0)) + (t.i1 == i ? t.l1 : static_cast<A>(0));
}

}  // namespace resize_detail

namespace cpu {
template <typename T>
void resize_nearest(T* y, const T* x, const ResizeGeom& g);
template <typename T>
void resize_nearest_backward(T* gx, const T* gy, const ResizeGeom& g);
template <typename T>
void resize_bilinear(T* y, const T* x, const ResizeGeom& g);
template <typename T>
void resize_bilinear_backward(T* gx, const T* gy, const ResizeGeom& g);
}  // namespace cpu

namespace cuda {
// T: float or bf16 (computed in float, rounded once on store).
template <typename T>
void resize_nearest(T* y, const T* x, const ResizeGeom& g, cudaStream_t s);
template <typename T>
void resize_nearest_backward(T* gx, const T* gy, const ResizeGeom& g, cudaStream_t s);
template <typename T>
void resize_bilinear(T* y, const T* x, const ResizeGeom& g, cudaStream_t s);
template <typename T>
void resize_bilinear_backward(T* gx, const T* gy, const ResizeGeom& g, cudaStream_t s);
}  // namespace cuda

}  // namespace mtl::kernels
