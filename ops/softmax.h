#pragma once
// Differentiable softmax along one dimension (class probabilities from logits, as used by
// test-time augmentation and sliding windows).
#include "core/tensor.h"

namespace mtl::ops {

// exp(x - max) / sum(exp(x - max)) along `dim` (negative counts from the end); float tensors on
// either device. A NaN in a slice makes that whole slice NaN.
Tensor softmax(const Tensor& x, int64_t dim);

}  // namespace mtl::ops
