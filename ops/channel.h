#pragma once
// Differentiable per-channel ops on NCHW tensors: the squeeze-and-excitation multiply and
// dropout (element-wise, and whole channels as nn.Dropout2d).
#include "core/generator.h"
#include "core/tensor.h"

namespace mtl::ops {

// y = x * s[:, :, None, None] for x [N, C, H, W] and s [N, C] or [N, C, 1, 1] (same device and
// dtype); gradients for both.
Tensor channel_scale(const Tensor& x, const Tensor& s);

// Identity when !training or p == 0 (x itself is returned). Otherwise each element is kept with
// probability 1 - p and scaled by 1 / (1 - p), as nn.Dropout. The mask depends only on the
// generator state (it draws ceil(numel / 4) Philox counters from `gen`), so the same generator
// state gives the same mask on CPU and CUDA. p must be in [0, 1).
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);
// nn.Dropout2d on x [N, C, H, W]: whole channels are kept or zeroed (ceil(N*C / 4) counters).
Tensor dropout2d(const Tensor& x, double p, bool training, Generator& gen);

}  // namespace mtl::ops
