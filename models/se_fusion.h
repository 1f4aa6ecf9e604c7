#pragma once
// Squeeze-and-excitation fusion (ESANET.md §2): each modality is reweighted by its own SE block
// (global average pool -> 1x1 conv C->C/16 -> relu -> 1x1 conv -> sigmoid -> channel scale) and
// the two are added into the RGB stream.
#include "nn/layers.h"

namespace mtl::models {

class SqueezeAndExcitation : public nn::Module {
 public:
  SqueezeAndExcitation(int64_t channels, Generator& gen, int64_t reduction = 16);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Sequential> fc;  // 0: conv, 1: relu, 2: conv, 3: sigmoid
};

class SEFusion : public nn::Module {
 public:
  SEFusion(int64_t channels, Generator& gen);
  Tensor forward(const Tensor& rgb, const Tensor& depth);
  std::shared_ptr<SqueezeAndExcitation> se_rgb, se_depth;
};

}  // namespace mtl::models
