#pragma once
// The two residual blocks of ESANet's encoders (ESANET.md §1.3-1.4), with the reference's
// parameter names.
#include "nn/layers.h"

namespace mtl::models {

// conv3x3-norm-relu-conv3x3-norm (+ identity or downsample) -> relu.
class BasicBlock : public nn::Module {
 public:
  BasicBlock(int64_t in, int64_t planes, int64_t stride, nn::NormKind norm, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  nn::ModulePtr bn1, bn2;
  std::shared_ptr<nn::Sequential> downsample;  // conv1x1 stride s + norm, when shapes change
};

// ERFNet's non-bottleneck-1D: 3x1 -> relu -> 1x3 -> norm(eps 1e-3) -> relu -> 3x1 -> relu -> 1x3
// -> norm(eps 1e-3) (+ identity or downsample) -> relu. A stride-2 block strides the first 3x1
// vertically and the first 1x3 horizontally. All four convolutions have a bias.
class NonBottleneck1D : public nn::Module {
 public:
  NonBottleneck1D(int64_t in, int64_t planes, int64_t stride, nn::NormKind norm, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Conv2d> conv3x1_1, conv1x3_1, conv3x1_2, conv1x3_2;
  nn::ModulePtr bn1, bn2;
  std::shared_ptr<nn::Sequential> downsample;
};

// torchvision's ResNet "v1.5" bottleneck, as ESANet's ResNet50 uses it: conv1x1 -> norm -> relu
// -> conv3x3 (stride here) -> norm -> relu -> conv1x1 to 4x planes -> norm (+ identity or
// downsample) -> relu.
class Bottleneck : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  Bottleneck(int64_t in, int64_t planes, int64_t stride, nn::NormKind norm, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Conv2d> conv1, conv2, conv3;
  nn::ModulePtr bn1, bn2, bn3;
  std::shared_ptr<nn::Sequential> downsample;
};

// The downsample shortcut: conv1x1 (stride, no bias) + norm, as children "0" and "1".
std::shared_ptr<nn::Sequential> make_downsample(int64_t in, int64_t out, int64_t stride, nn::NormKind norm,
                                                Generator& gen);

}  // namespace mtl::models
