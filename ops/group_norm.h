#pragma once
// Group normalisation, as torch.nn.functional.group_norm: x of shape [N, C, *] (NCHW in the
// model) with its C channels split into `groups` groups of consecutive channels; each (sample,
// group) is normalised with its own mean and biased variance, then scaled and shifted per channel.
#include <cstdint>

#include "core/tensor.h"

namespace mtl::ops {

struct GroupNormOutput {
  Tensor y;     // x's shape; differentiable in x, weight and bias
  Tensor mean;  // [N, groups], the statistics the backward uses; no autograd history
  Tensor rstd;  // [N, groups], 1 / sqrt(biased variance + eps)
};

// weight and bias are [C] and may each be undefined (scale 1, shift 0). `groups` must divide C;
// otherwise an mtl::Error names the channel count and the group count. eps must be >= 0.
Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// The same, also returning the saved per-(sample, group) statistics.
GroupNormOutput group_norm_with_stats(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias,
                                      double eps = 1e-5);

}  // namespace mtl::ops
