#include "models/context_module.h"

#include "ops/ops.h"

namespace mtl::models {

namespace {
// Adaptive average pooling as a module, so the PPM branch is Sequential(pool, conv) and its
// parameters sit under "features.i.1" as in the reference.
class AdaptivePool : public nn::Module {
 public:
  explicit AdaptivePool(int64_t bin) : bin_(bin) {}
  Tensor forward(const Tensor& x) override { return ops::adaptive_avg_pool2d(x, bin_, bin_); }

 private:
  int64_t bin_;
};
}  // namespace

ContextModule::ContextModule(const ModelConfig& cfg, const BuildOptions& build, int64_t in, int64_t out,
                             Generator& gen)
    : adaptive_(cfg.context == Context::appm),
      bins_{1, 5},
      train_h_(build.input_height / 32),
      train_w_(build.input_width / 32),
      // Learned upsampling needs a factor of 2, which the branches do not have: nearest instead.
      bilinear_(cfg.upsampling == nn::UpsampleMode::bilinear) {
  const nn::NormKind norm = cfg.norm;
  const int64_t reduction = std::max<int64_t>(1, in / static_cast<int64_t>(bins_.size()));
  for (size_t i = 0; i < bins_.size(); ++i) {
    auto conv = std::make_shared<ConvBNAct>(in, reduction, 1, norm, gen);
    branch_convs.push_back(conv);
    nn::ModulePtr branch = conv;
    if (!adaptive_)
      branch = std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{std::make_shared<AdaptivePool>(bins_[i]), conv});
    features.push_back(branch);
  }
  struct List : nn::Module {
    explicit List(const std::vector<nn::ModulePtr>& ms) {
      for (size_t i = 0; i < ms.size(); ++i) add_child(std::to_string(i), ms[i]);
    }
  };
  register_module("features", std::make_shared<List>(features));
  final_conv = register_module("final_conv",
                               std::make_shared<ConvBNAct>(in + reduction * static_cast<int64_t>(bins_.size()), out, 1, norm, gen));
}

std::pair<int64_t, int64_t> ContextModule::pool_size(size_t i, int64_t h, int64_t w) const {
  if (!adaptive_) return {bins_[i], bins_[i]};
  // int(h / h_train + 0.5) as in the reference: bins scale with the input.
  const int64_t mh = static_cast<int64_t>(static_cast<double>(h) / static_cast<double>(train_h_) + 0.5);
  const int64_t mw = static_cast<int64_t>(static_cast<double>(w) / static_cast<double>(train_w_) + 0.5);
  return {bins_[i] * std::max<int64_t>(mh, 1), bins_[i] * std::max<int64_t>(mw, 1)};
}

Tensor ContextModule::forward(const Tensor& x) {
  const int64_t h = x.size(2), w = x.size(3);
  std::vector<Tensor> outs = {x};
  for (size_t i = 0; i < features.size(); ++i) {
    Tensor y;
    if (adaptive_) {
      const auto [ph, pw] = pool_size(i, h, w);
      y = features[i]->forward(ops::adaptive_avg_pool2d(x, ph, pw));
    } else {
      y = features[i]->forward(x);
    }
    outs.push_back(bilinear_ ? ops::interpolate_bilinear(y, h, w) : ops::interpolate_nearest(y, h, w));
  }
  return final_conv->forward(ops::cat(outs, 1));
}

}  // namespace mtl::models
