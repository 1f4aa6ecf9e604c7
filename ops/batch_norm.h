#pragma once
// Batch normalisation of NCHW tensors over (N, H, W) per channel, as torch.nn.functional.batch_norm.
#include "core/tensor.h"

namespace mtl::ops {

// training: normalises with the batch mean and biased variance and, when running_mean and
// running_var are defined, updates them in place on their device (no host synchronisation):
// r = (1 - momentum) r + momentum * batch statistic, with the unbiased variance for running_var.
// Evaluation: normalises with the running statistics, which must be defined.
// weight and bias ([C]) may be undefined (no affine transform). Differentiable in x, weight and
// bias; the running statistics are buffers and must not require grad.
Tensor batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                    Tensor running_var, bool training, double momentum = 0.1, double eps = 1e-5);

}  // namespace mtl::ops
