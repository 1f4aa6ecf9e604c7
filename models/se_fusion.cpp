#include "models/se_fusion.h"

#include "ops/ops.h"

namespace mtl::models {

SqueezeAndExcitation::SqueezeAndExcitation(int64_t channels, Generator& gen, int64_t reduction) {
  // Narrow test models can have fewer than 16 channels; keep at least one hidden unit.
  const int64_t hidden = std::max<int64_t>(1, channels / reduction);
  nn::Conv2dOptions a, b;
  a.in = channels, a.out = hidden;
  b.in = hidden, b.out = channels;
  fc = register_module("fc", std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{
                                 std::make_shared<nn::Conv2d>(a, gen), std::make_shared<nn::ReLU>(),
                                 std::make_shared<nn::Conv2d>(b, gen), std::make_shared<nn::Sigmoid>()}));
}

Tensor SqueezeAndExcitation::forward(const Tensor& x) {
  Tensor w = fc->forward(ops::adaptive_avg_pool2d(x, 1, 1));
  return ops::channel_scale(x, ops::reshape(w, {x.size(0), x.size(1)}));
}

SEFusion::SEFusion(int64_t channels, Generator& gen) {
  se_rgb = register_module("se_rgb", std::make_shared<SqueezeAndExcitation>(channels, gen));
  se_depth = register_module("se_depth", std::make_shared<SqueezeAndExcitation>(channels, gen));
}

Tensor SEFusion::forward(const Tensor& rgb, const Tensor& depth) {
  return ops::add(se_rgb->forward(rgb), se_depth->forward(depth));
}

}  // namespace mtl::models
