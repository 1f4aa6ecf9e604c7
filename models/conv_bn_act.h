#pragma once
// Conv (no bias) -> norm -> optional ReLU, with children `conv` and `bn` as the reference's
// ConvBNAct (the norm keeps the name `bn` when it is a GroupNorm, so names do not depend on it).
#include "nn/layers.h"

namespace mtl::models {

class ConvBNAct : public nn::Module {
 public:
  ConvBNAct(int64_t in, int64_t out, int64_t kernel, nn::NormKind norm, Generator& gen, bool act = true,
            int64_t stride = 1);
  Tensor forward(const Tensor& x) override;
  bool has_act() const { return act_; }
  std::shared_ptr<nn::Conv2d> conv;
  nn::ModulePtr bn;

 private:
  bool act_;
};

}  // namespace mtl::models
