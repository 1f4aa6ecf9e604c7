#pragma once
// 2-D convolution (cross-correlation, as in PyTorch) on contiguous NCHW buffers:
// x [n, c_in, h, w], weight [c_out, c_in / groups, kh, kw], bias [c_out], y [n, c_out, out_h, out_w].
// CPU: im2col + OpenBLAS GEMM per (sample, group); deterministic. CUDA: cuDNN with algorithms
// benchmarked (cudnnFind*Ex, which synchronises) on the first call per (geometry, direction,
// policy) and cached; workspaces come from the caching allocator. Without the deterministic policy
// cuDNN may pick algorithms that accumulate with atomics (as PyTorch does by default).
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdint>

namespace mtl::kernels {

// Geometry of one convolution; out_h/out_w are derived by the op (PyTorch's formula).
struct ConvGeometry {
  int64_t n = 0, c_in = 0, h = 0, w = 0;
  int64_t c_out = 0, kh = 0, kw = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
};

namespace cpu {
// bias may be null.
template <typename T> void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y);
template <typename T> void conv2d_backward_input(const ConvGeometry& g, const T* gy, const T* w, T* gx);
template <typename T> void conv2d_backward_weight(const ConvGeometry& g, const T* gy, const T* x, T* gw);
template <typename T> void conv2d_backward_bias(const ConvGeometry& g, const T* gy, T* gb);
}  // namespace cpu

namespace cuda {
// How cuDNN may compute: deterministic algorithms only, TF32 tensor cores allowed. Both are part of
// the algorithm cache key.
struct ConvPolicy {
  bool deterministic = false;
  bool allow_tf32 = true;
};
// The handle must already be bound to the stream the work should run on. bias may be null.
void conv2d_forward(cudnnHandle_t h, const ConvGeometry& g, ConvPolicy p, const float* x, const float* w,
                    const float* bias, float* y);
void conv2d_backward_input(cudnnHandle_t h, const ConvGeometry& g, ConvPolicy p, const float* gy, const float* w,
                           float* gx);
void conv2d_backward_weight(cudnnHandle_t h, const ConvGeometry& g, ConvPolicy p, const float* gy, const float* x,
                            float* gw);
// gb[c] = sum over n, y, x of gy: one block per channel, fixed summation order.
void conv2d_backward_bias(const ConvGeometry& g, const float* gy, float* gb, cudaStream_t s);
// Entries in the algorithm cache (for tests and logging).
int64_t conv_algorithm_cache_size();
}  // namespace cuda

}  // namespace mtl::kernels
