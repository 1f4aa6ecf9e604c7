#pragma once
// The multi-task model's normalisation layers: BatchNorm, or GroupNorm with a group count chosen
// per layer width.
#include <cstdint>

#include "nn/layers.h"

namespace mtl::models {

// The group count for a layer of `channels` channels: 32 for >= 32 channels, 16 for >= 16, 8 for
// >= 8, else channels / 2 (at least 1). When that count does not divide `channels` (48: 32 does
// not divide 48) the result is the largest divisor of `channels` below it (48 -> 24, 40 -> 20,
// 5 -> 1), so the count is always valid for ops::group_norm. Throws mtl::Error for channels < 1.
int64_t group_norm_groups(int64_t channels);

// BatchNorm2d(channels, eps) or GroupNorm(group_norm_groups(channels), channels, eps).
nn::ModulePtr make_norm(nn::NormKind kind, int64_t channels, double eps = 1e-5);

}  // namespace mtl::models
