#pragma once
// 2-D convolution on NCHW tensors with PyTorch's semantics (cross-correlation, zero padding).
#include <cstdint>

#include "core/tensor.h"

namespace mtl::ops {

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;

  // The same stride, padding and dilation along both axes.
  static Conv2dParams square(int64_t stride, int64_t pad, int64_t dilation = 1, int64_t groups = 1) {
    return {stride, stride, pad, pad, dilation, dilation, groups};
  }
};

// floor((in + 2 pad - dil (k - 1) - 1) / stride) + 1; at most 0 when the dilated kernel does not
// fit the padded input.
int64_t conv2d_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation);

// x [N, C_in, H, W], weight [C_out, C_in / groups, kH, kW], bias [C_out] or undefined
// -> [N, C_out, H_out, W_out]. Differentiable in x, weight and bias. On CUDA (float32) it runs
// cuDNN under mtl::cuda::allow_tf32() and mtl::cuda::deterministic().
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), Conv2dParams p = {});

}  // namespace mtl::ops
