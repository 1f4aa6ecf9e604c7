#pragma once
// Differentiable 2-D pooling on NCHW tensors, with PyTorch's semantics (dilation 1,
// ceil_mode=false). `kernel`, `stride` and `padding` are {h, w}.
#include <array>
#include <cstdint>

#include "core/tensor.h"

namespace mtl::ops {

// Padding counts as -inf; the gradient goes to the first maximum of each window.
Tensor max_pool2d(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding = {0, 0});
// count_include_pad=true: every window is divided by its size within the padded input.
Tensor avg_pool2d(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding = {0, 0});
// Bins [floor(i*in/out), ceil((i+1)*in/out)); out_h, out_w may be larger than the input.
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace mtl::ops
