#pragma once
// A ResNet-18/34 encoder with BasicBlock or NonBottleneck1D blocks, exposing the stages
// separately because ESANet fuses the depth stream into the RGB stream between them.
#include "models/model_config.h"
#include "nn/layers.h"

namespace mtl::models {

class ResNetEncoder : public nn::Module {
 public:
  ResNetEncoder(const ModelConfig& cfg, int64_t in_channels, Generator& gen);
  // conv7x7/2 -> norm -> relu (1/2 resolution); the max-pool is applied by the caller.
  Tensor forward_first_conv(const Tensor& x);
  Tensor forward_layer(int i, const Tensor& x);  // i = 1..4
  int64_t channels(int stage) const;  // 0 = stem, 1..4 = layers

  std::shared_ptr<nn::Conv2d> conv1;
  nn::ModulePtr bn1;
  std::shared_ptr<nn::Sequential> layer[5];  // layer[1..4]

 private:
  int64_t ch_[5];
};

}  // namespace mtl::models
