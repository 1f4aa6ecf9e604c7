#pragma once
#include "core/tensor.h"

namespace mtl::ops {

// [m, k] x [k, n] -> [m, n]; either operand may be a transposed view.
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace mtl::ops
