#pragma once
// 2-D pooling over contiguous NCHW buffers: max (with argmax), average (count_include_pad, as
// PyTorch's default) and adaptive average, forward and backward. Backward kernels are gathers:
// each input element sums, in a fixed order, the gradients of the output windows that contain it,
// so results are deterministic without atomics. The window arithmetic is shared by the CPU and
// CUDA files through the MTL_HD helpers below.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/layout.h"

namespace mtl::kernels {

// Planes = N*C; windows start at o*stride - pad and span `k` input pixels (dilation 1).
struct PoolGeom {
  int64_t planes = 0;
  int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t k_h = 1, k_w = 1, s_h = 1, s_w = 1, p_h = 0, p_w = 0;
};

namespace pool_detail {

// Output positions o in [lo, hi] whose window [o*s - p, o*s - p + k) contains input position i.
MTL_HD void windows_containing(int64_t i, int64_t k, int64_t s, int64_t p, int64_t out, int64_t& lo,
                               int64_t& hi) {
  const int64_t a = i + p - k + 1;  // o*s >= a
  lo = a <= 0 ? 0 : (a + s - 1) / s;
  hi = (i + p) / s;  // i + p >= 0 always
  if (hi > out - 1) hi = out - 1;
}

// PyTorch's avg_pool2d divisor with count_include_pad: the window clipped to the padded input.
MTL_HD int64_t avg_divisor(int64_t oh, int64_t ow, const PoolGeom& g) {
  const int64_t h0 = oh * g.s_h - g.p_h, w0 = ow * g.s_w - g.p_w;
  int64_t h1 = h0 + g.k_h, w1 = w0 + g.k_w;
  if (h1 > g.in_h + g.p_h) h1 = g.in_h + g.p_h;
  if (w1 > g.in_w + g.p_w) w1 = g.in_w + g.p_w;
  return (h1 - h0) * (w1 - w0);
}

// Adaptive pooling bins (PyTorch): [floor(o*in/out), ceil((o+1)*in/out)).
MTL_HD int64_t adaptive_start(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
MTL_HD int64_t adaptive_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }
// Bins o in [lo, hi] that contain input position i.
MTL_HD void adaptive_bins_containing(int64_t i, int64_t in, int64_t out, int64_t& lo, int64_t& hi) {
  lo = (i * out) / in;
  hi = ((i + 1) * out + in - 1) / in - 1;
  if (hi > out - 1) hi = out - 1;
}

}  // namespace pool_detail

namespace cpu {
// argmax (may be null): flat index ih*in_w + iw within the plane of the first maximum (a NaN
// wins, as in PyTorch).
template <typename T> void max_pool2d(T* y, int32_t* argmax, const T* x, const PoolGeom& g);
template <typename T> void max_pool2d_backward(T* gx, const T* gy, const int32_t* argmax, const PoolGeom& g);
template <typename T> void avg_pool2d(T* y, const T* x, const PoolGeom& g);
template <typename T> void avg_pool2d_backward(T* gx, const T* gy, const PoolGeom& g);
// Only planes, in_h, in_w, out_h, out_w of the geometry are used.
template <typename T> void adaptive_avg_pool2d(T* y, const T* x, const PoolGeom& g);
template <typename T> void adaptive_avg_pool2d_backward(T* gx, const T* gy, const PoolGeom& g);
}  // namespace cpu

namespace cuda {
void max_pool2d(float* y, int32_t* argmax, const float* x, const PoolGeom& g, cudaStream_t s);
void max_pool2d_backward(float* gx, const float* gy, const int32_t* argmax, const PoolGeom& g, cudaStream_t s);
void avg_pool2d(float* y, const float* x, const PoolGeom& g, cudaStream_t s);
void avg_pool2d_backward(float* gx, const float* gy, const PoolGeom& g, cudaStream_t s);
void adaptive_avg_pool2d(float* y, const float* x, const PoolGeom& g, cudaStream_t s);
void adaptive_avg_pool2d_backward(float* gx, const float* gy, const PoolGeom& g, cudaStream_t s);
}  // namespace cuda

}  // namespace mtl::kernels
