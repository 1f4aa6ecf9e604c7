#pragma once
// 2-D convolution (cross-correlation, as in PyTorch) on contiguous NCHW buffers:
// x [n, c_in, h, w], weight [c_out, c_in / groups, kh, kw], bias [c_out], y [n, c_out, out_h, out_w].
// CPU: im2col + OpenBLAS GEMM per (sample, group); deterministic. CUDA: cuDNN with one algorithm
// chosen on the first call per (geometry, direction, policy, pointer alignment) and cached;
// workspaces come from the caching allocator. Under the deterministic policy the choice is the
// first deterministic algorithm in cuDNN's heuristic order (cudnnGet*_v7), so every process on the
// same GPU and cuDNN picks the same one and computes the same bits; otherwise the candidates are
// timed (cudnnFind*Ex, which synchronises) and the fastest is taken, which may accumulate with
// atomics (as PyTorch does by default).
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "core/bfloat16.h"

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
template <typename T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv2d_backward_input(const ConvGeometry& g, const T* gy, const T* w, T* gx);
template <typename T>
void conv2d_backward_weight(const ConvGeometry& g, const T* gy, const T* x, T* gw);
template <typename T>
void conv2d_backward_bias(const ConvGeometry& g, const T* gy, T* gb);
// y[n, c, :, :] += bias[c].
template <typename T>
void conv2d_bias_add(const ConvGeometry& g, const T* bias, T* y);
}  // namespace cpu

namespace cuda {
// How cuDNN may compute: deterministic algorithms only, TF32 tensor cores allowed. Both are part of
// the algorithm cache key.
struct ConvPolicy {
  bool deterministic = false;
  bool allow_tf32 = true;
  bool bf16 = false;  // bfloat16 data: tensor-op math whatever allow_tf32 says (set by the launchers)
};

// One algorithm as cuDNN lists it, in cuDNN's order: the heuristics' preference (deterministic
// policy) or fastest first (timed search).
struct ConvAlgoCandidate {
  int algo = 0;
  cudnnStatus_t status = CUDNN_STATUS_SUCCESS;
  cudnnDeterminism_t determinism = CUDNN_NON_DETERMINISTIC;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;  // as cuDNN labels it
  size_t memory = 0;                          // workspace bytes
};
// What runs: the algorithm and the math type to set on the descriptor for the run.
struct ConvAlgoChoice {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};
// The math type on the descriptor while cuDNN lists its candidates. Without TF32 it is
// CUDNN_FMA_MATH, which restricts cuDNN to full float32 products; cuDNN may label such candidates
// CUDNN_DEFAULT_MATH, so the labels are not used to enforce float32.
cudnnMathType_t conv_search_math(ConvPolicy p);
// The first candidate that ran, needs at most `max_workspace` bytes and obeys the policy:
// deterministic if asked; never one that may round float to half; without TF32 never one labelled
// as tensor-op math, and it runs under CUDNN_FMA_MATH; with TF32 it runs under its own label, as
// PyTorch does. nullopt when no candidate qualifies.
std::optional<ConvAlgoChoice> pick_conv_algorithm(const std::vector<ConvAlgoCandidate>& candidates, ConvPolicy p,
                                                  size_t max_workspace);
// T: float or bf16 (bfloat16 data, float32 accumulation). The handle must already be bound to
// the stream the work should run on.
template <typename T>
void conv2d_forward(cudnnHandle_t h, const ConvGeometry& g, ConvPolicy p, const T* x, const T* w, T* y);
// y[n, c, :, :] += bias[c] (float32 bias, rounded once into T).
template <typename T>
void conv2d_bias_add(const ConvGeometry& g, const float* bias, T* y, cudaStream_t s);
template <typename T>
void conv2d_backward_input(cudnnHandle_t h, const ConvGeometry& g, ConvPolicy p, const T* gy, const T* w, T* gx);
template <typename T>
void conv2d_backward_weight(cudnnHandle_t h, const ConvGeometry& g, ConvPolicy p, const T* gy, const T* x, T* gw);
// gb[c] = sum over n, y, x of gy, in float32: one block per channel, fixed summation order.
template <typename T>
void conv2d_backward_bias(const ConvGeometry& g, const T* gy, float* gb, cudaStream_t s);
// Entries in the algorithm cache (for tests and logging).
int64_t conv_algorithm_cache_size();
}  // namespace cuda

}  // namespace mtl::kernels
