#pragma once
// Group normalisation of a contiguous [N, C, HW] buffer with C split into `groups` groups of
// D = C / groups consecutive channels. Group (n, g) is the contiguous run of M = D * HW elements
// starting at (n * groups + g) * M. Statistics are per (n, g): mean and rstd = 1/sqrt(var + eps)
// with the biased variance, saved as [N, groups] for the backward. The affine transform is folded
// into one scale and shift per (n, c): y = x * a + b, a = gamma[c] * rstd, b = beta[c] - mean * a.
// gamma and beta may be null (scale 1, shift 0).
//
// Backward (derivation in docs/group_norm_backward.md): per (n, c) sums ds = sum(dy * (x - mean))
// (centred on the saved group mean, so a large common offset does not cancel) and db = sum(dy) over
// HW; per (n, g) coefficients c1, c2; dx = a * dy + c1 * x + c2; dgamma and dbeta from the
// per-(n, c) sums by a fixed-order loop over N. dx, dgamma and dbeta may each be null
// (not wanted). Everything is deterministic: no atomics, every reduction in a fixed order.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/bfloat16.h"

namespace mtl::kernels {

struct GroupNormDims {
  int64_t n = 0, c = 0, hw = 0, groups = 1;
  int64_t group_channels() const { return c / groups; }   // D
  int64_t group_size() const { return c / groups * hw; }  // M
};

namespace cpu {
// Accumulates in double (Welford for the statistics): the oracle for the float32 CUDA kernels.
template <typename T>
void group_norm_forward(T* y, T* mean, T* rstd, const T* x, const T* gamma, const T* beta, const GroupNormDims& d,
                        double eps);
template <typename T>
void group_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean, const T* rstd,
                         const T* gamma, const GroupNormDims& d);
}  // namespace cpu

namespace cuda {
// Scratch the launchers need (in floats; may be 0). The caller allocates it on the device and
// passes it in; its contents on entry do not matter.
size_t group_norm_forward_workspace(const GroupNormDims& d);
size_t group_norm_backward_workspace(const GroupNormDims& d);

// T: float or bf16 for x, y, dy and dx; statistics, parameters and their gradients are float32.
template <typename T>
void group_norm_forward(T* y, float* mean, float* rstd, const T* x, const float* gamma, const float* beta,
                        const GroupNormDims& d, double eps, float* workspace, cudaStream_t s);
template <typename T>
void group_norm_backward(T* dx, float* dgamma, float* dbeta, const T* dy, const T* x, const float* mean,
                         const float* rstd, const float* gamma, const GroupNormDims& d, float* workspace,
                         cudaStream_t s);
}  // namespace cuda

}  // namespace mtl::kernels
