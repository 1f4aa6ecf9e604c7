#pragma once
// 2-D pooling over contiguous NCHW buffers: max (with argmax), average (count_include_pad, as
// PyTorch's default) and adaptive average, forward and backward. Backward kernels are gathers:
// each input element sums, in a fixed order, the gradients of the output windows that contain it,
// so results are deterministic without atomics. The window arithmetic is shared by the CPU and
// CUDA files through the MTL_HD helpers below.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/bfloat16.h"
#include "kernels/layout.h"

namespace mtl::kernels {

// Planes = N*C; windows start at o*stride - pad and span `k` input pixels (dilation 1).
struct PoolGeom {
  int64_t planes = 0;
  int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t k_h = 1, k_w = 1, s_h = 1, s_w = 1, p_h = 0, p_w = 0;
};

namespace pool_detail {

// The helpers compute in the integer type I of their arguments (int64_t on the CPU; int32_t in
// CUDA kernels over tensors small enough, see kernels/cuda/launch.cuh).

// Output positions o in [lo, hi] whose window [o*s - p, o*s - p + k) contains input position i.
template <typename I>
MTL_HD void windows_containing(I i, I k, I s, I p, I out, I& lo, I& hi) {
  const I a = i + p - k + 1;  // o*s >= a
  lo = a <= 0 ? 0 : (a + s - 1) / s;
  hi = (i + p) / s;  // i + p >= 0 always
  if (hi > out - 1) hi = out - 1;
}

// PyTorch's avg_pool2d divisor with count_include_pad: the window clipped to the padded input. G
// is PoolGeom or a kernel's copy of it in I.
template <typename I, typename G>
MTL_HD I avg_divisor(I oh, I ow, const G& g) {
  const I h0 = oh * static_cast<I>(g.s_h) - static_cast<I>(g.p_h),
          w0 = ow * static_cast<I>(g.s_w) - static_cast<I>(g.p_w);
  I h1 = h0 + static_cast<I>(g.k_h), w1 = w0 + static_cast<I>(g.k_w);
  if (h1 > static_cast<I>(g.in_h + g.p_h)) h1 = static_cast<I>(g.in_h + g.p_h);
  if (w1 > static_cast<I>(g.in_w + g.p_w)) w1 = static_cast<I>(g.in_w + g.p_w);
  return (h1 - h0) * (w1 - w0);
}

// Adaptive pooling bins (PyTorch): [floor(o*in/out), ceil((o+1)*in/out)).
template <typename I>
MTL_HD I adaptive_start(I o, I in, I out) {
  return (o * in) / out;
}
template <typename I>
MTL_HD I adaptive_end(I o, I in, I out) {
  return ((o + 1) * in + out - 1) / out;
}
// Bins o in [lo, hi] that contain input position i.
template <typename I>
MTL_HD void adaptive_bins_containing(I i, I in, I out, I& lo, I& hi) {
  lo = (i * out) / in;
  hi = ((i + 1) * out + in - 1) / in - 1;
  if (hi > out - 1) hi = out - 1;
}

}  // namespace pool_detail

namespace cpu {
// argmax (may be null): flat index ih*in_w + iw within the plane of the first maximum (a NaN
// wins, as in PyTorch).
template <typename T>
void max_pool2d(T* y, int32_t* argmax, const T* x, const PoolGeom& g);
template <typename T>
void max_pool2d_backward(T* gx, const T* gy, const int32_t* argmax, const PoolGeom& g);
template <typename T>
void avg_pool2d(T* y, const T* x, const PoolGeom& g);
template <typename T>
void avg_pool2d_backward(T* gx, const T* gy, const PoolGeom& g);
// Only planes, in_h, in_w, out_h, out_w of the geometry are used.
template <typename T>
void adaptive_avg_pool2d(T* y, const T* x, const PoolGeom& g);
template <typename T>
void adaptive_avg_pool2d_backward(T* gx, const T* gy, const PoolGeom& g);
}  // namespace cpu

namespace cuda {
// T: float or bf16 (computed in float, rounded once on store).
template <typename T>
void max_pool2d(T* y, int32_t* argmax, const T* x, const PoolGeom& g, cudaStream_t s);
template <typename T>
void max_pool2d_backward(T* gx, const T* gy, const int32_t* argmax, const PoolGeom& g, cudaStream_t s);
template <typename T>
void avg_pool2d(T* y, const T* x, const PoolGeom& g, cudaStream_t s);
template <typename T>
void avg_pool2d_backward(T* gx, const T* gy, const PoolGeom& g, cudaStream_t s);
template <typename T>
void adaptive_avg_pool2d(T* y, const T* x, const PoolGeom& g, cudaStream_t s);
template <typename T>
void adaptive_avg_pool2d_backward(T* gx, const T* gy, const PoolGeom& g, cudaStream_t s);
}  // namespace cuda

}  // namespace mtl::kernels
