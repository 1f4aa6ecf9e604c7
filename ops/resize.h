#pragma once
// Differentiable spatial resizing of NCHW tensors to an output size, with PyTorch's
// F.interpolate(x, size=(out_h, out_w), mode=...) semantics.
#include <cstdint>

#include "core/tensor.h"

namespace mtl::ops {

// mode='nearest': src = min(floor(dst * float(in / out)), in - 1).
Tensor interpolate_nearest(const Tensor& x, int64_t out_h, int64_t out_w);
// mode='bilinear', align_corners=false: src = max((dst + 0.5) * in / out - 0.5, 0), the +1
// neighbour clamped to the last pixel.
Tensor interpolate_bilinear(const Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace mtl::ops
