#pragma once
// Synchronised batch normalisation (data-parallel training, model.sync_bn): the statistics of
// the whole global batch, each process holding its own share of it. Between these kernels the op
// sums the per-channel buffers over the processes (ops/sync_batch_norm.h); normalising uses
// kernels/batch_norm.h's apply. Shapes as in batch_norm.h ([n, c, hw] per process).
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/batch_norm.h"

namespace mtl::kernels {

namespace cpu {
// sums[0, c): sum of x per channel, sums[c, 2c): sum of x^2, sums[2c]: the values per channel
// (n * hw); all float64, so that the sums over every process keep E[x^2] - E[x]^2 accurate.
template <typename T>
void sync_batch_norm_sums(const BatchNormShape& s, const T* x, double* sums);
// From the summed buffer (count M = sums[2c]): mean, invstd = 1/sqrt(biased var + eps), and,
// when not null, the running statistics r = (1 - momentum) r + momentum * batch statistic (the
// unbiased variance, var * M / (M - 1)).
template <typename T>
void sync_batch_norm_stats(int64_t c, const double* sums, double eps, double momentum, T* mean, T* invstd,
                           T* running_mean, T* running_var);
// gx = weight * invstd * (gy - sum_gy / M - xhat * sum_gy_xhat / M), with `grad_sums` [2c] =
// (sum_gy, sum_gy_xhat) summed over the processes and M = *count, the global values per channel.
template <typename T>
void sync_batch_norm_backward_input(const BatchNormShape& s, const T* gy, const T* x, const T* mean, const T* invstd,
                                    const T* weight, const T* grad_sums, const double* count, T* gx);
}  // namespace cpu

namespace cuda {
// Same contracts, float32 data (the sums float64); channel sums are two-stage (chunk partials,
// then a fixed-order sum per channel) with no atomics.
void sync_batch_norm_sums(const BatchNormShape& s, const float* x, double* sums, cudaStream_t st);
void sync_batch_norm_stats(int64_t c, const double* sums, double eps, double momentum, float* mean, float* invstd,
                           float* running_mean, float* running_var, cudaStream_t st);
void sync_batch_norm_backward_input(const BatchNormShape& s, const float* gy, const float* x, const float* mean,
                                    const float* invstd, const float* weight, const float* grad_sums,
                                    const double* count, float* gx, cudaStream_t st);
}  // namespace cuda

}  // namespace mtl::kernels
