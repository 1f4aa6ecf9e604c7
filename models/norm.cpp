#include "models/norm.h"

#include <algorithm>

#include "core/error.h"

namespace mtl::models {

int64_t group_norm_groups(int64_t channels) {
  MTL_CHECK(channels >= 1, "group_norm_groups: the channel count must be at least 1, got ", channels);
  int64_t g = channels >= 32 ? 32 : channels >= 16 ? 16 : channels >= 8 ? 8 : std::max<int64_t>(1, channels / 2);
  while (channels % g != 0) --g;  // ends at 1 at the latest
  return g;
}

nn::ModulePtr make_norm(nn::NormKind kind, int64_t channels, double eps) {
  if (kind == nn::NormKind::batchnorm) return std::make_shared<nn::BatchNorm2d>(channels, eps);
  return std::make_shared<nn::GroupNorm>(group_norm_groups(channels), channels, eps);
}

}  // namespace mtl::models
