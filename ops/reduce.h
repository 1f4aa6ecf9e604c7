#pragma once
#include <vector>

#include "core/tensor.h"

namespace mtl::ops {

// Sum / mean over `dims` (all dimensions when empty); keepdim keeps them as size 1.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);

}  // namespace mtl::ops
