#pragma once
// Batch normalisation over contiguous NCHW buffers viewed as [n, c, hw]; statistics are per channel
// over m = n * hw values. The forward produces per-channel `mean` and `invstd` (batch statistics in
// training, running statistics in evaluation) which the backward reuses. weight/bias may be null
// (no affine transform). Derivation of the backward: docs/batch_norm_backward.md.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/bfloat16.h"

namespace mtl::kernels {

struct BatchNormShape {
  int64_t n = 0, c = 0, hw = 0;
};

namespace cpu {
// Training: mean, invstd = 1/sqrt(biased var + eps); when running_mean/running_var are not null,
// updates them in place: r = (1 - momentum) r + momentum * batch (running_var takes the unbiased
// variance). Needs m >= 2 when the running variance is updated.
template <typename T>
void batch_norm_train_stats(const BatchNormShape& s, const T* x, double eps, double momentum, T* mean, T* invstd,
                            T* running_mean, T* running_var);
// Evaluation: mean = running_mean, invstd = 1/sqrt(running_var + eps).
template <typename T>
void batch_norm_eval_stats(int64_t c, const T* running_mean, const T* running_var, double eps, T* mean, T* invstd);
// y = (x - mean) * invstd * weight + bias
template <typename T>
void batch_norm_apply(const BatchNormShape& s, const T* x, const T* mean, const T* invstd, const T* weight,
                      const T* bias, T* y);
// sum_gy[c] = sum of gy, sum_gy_xhat[c] = sum of gy * (x - mean) * invstd, over the channel's m values.
template <typename T>
void batch_norm_backward_reduce(const BatchNormShape& s, const T* gy, const T* x, const T* mean, const T* invstd,
                                T* sum_gy, T* sum_gy_xhat);
// gx = weight * invstd * (gy - sum_gy / m - xhat * sum_gy_xhat / m) with batch statistics
// (training), or weight * invstd * gy with running ones (sum_gy, sum_gy_xhat unused, may be null).
template <typename T>
void batch_norm_backward_input(const BatchNormShape& s, const T* gy, const T* x, const T* mean, const T* invstd,
                               const T* weight, const T* sum_gy, const T* sum_gy_xhat, bool training, T* gx);
}  // namespace cpu

namespace cuda {
// Same contracts: x, y, gy and gx in T (float or bf16), statistics, parameters and sums in float32.
// Channel reductions are two-stage (chunk partials, then a fixed-order sum per channel) with no
// atomics; the running statistics are updated on the device.
template <typename T>
void batch_norm_train_stats(const BatchNormShape& s, const T* x, double eps, double momentum, float* mean,
                            float* invstd, float* running_mean, float* running_var, cudaStream_t st);
void batch_norm_eval_stats(int64_t c, const float* running_mean, const float* running_var, double eps, float* mean,
                           float* invstd, cudaStream_t st);
template <typename T>
void batch_norm_apply(const BatchNormShape& s, const T* x, const float* mean, const float* invstd, const float* weight,
                      const float* bias, T* y, cudaStream_t st);
template <typename T>
void batch_norm_backward_reduce(const BatchNormShape& s, const T* gy, const T* x, const float* mean,
                                const float* invstd, float* sum_gy, float* sum_gy_xhat, cudaStream_t st);
template <typename T>
void batch_norm_backward_input(const BatchNormShape& s, const T* gy, const T* x, const float* mean, const float* invstd,
                               const float* weight, const float* sum_gy, const float* sum_gy_xhat, bool training, T* gx,
                               cudaStream_t st);
}  // namespace cuda

}  // namespace mtl::kernels
