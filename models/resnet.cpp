#include "models/resnet.h"

#include "models/norm.h"
#include "models/resnet_blocks.h"
#include "nn/init.h"
#include "ops/ops.h"

namespace mtl::models {

ResNetEncoder::ResNetEncoder(const ModelConfig& cfg, int64_t in_channels, Generator& gen) {
  const nn::NormKind norm = cfg.norm;
  // ResNet50 has ResNet34's block counts with bottleneck blocks (4x wider outputs).
  const int blocks18[4] = {2, 2, 2, 2}, blocks34[4] = {3, 4, 6, 3};
  const int* blocks = cfg.encoder == Encoder::resnet18 ? blocks18 : blocks34;
  const bool bottleneck = cfg.encoder == Encoder::resnet50;
  ch_[0] = cfg.ch(64);
  nn::Conv2dOptions o;
  o.in = in_channels, o.out = ch_[0], o.kernel = {7, 7}, o.stride = {2, 2}, o.padding = {3, 3}, o.bias = false;
  conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(o, gen));
  bn1 = register_module("bn1", make_norm(norm, ch_[0]));
  int64_t in = ch_[0];
  for (int i = 1; i <= 4; ++i) {
    const int64_t planes = cfg.ch(64 << (i - 1));
    ch_[i] = bottleneck ? planes * Bottleneck::kExpansion : planes;
    auto seq = std::make_shared<nn::Sequential>();
    for (int b = 0; b < blocks[i - 1]; ++b) {
      const int64_t stride = (i > 1 && b == 0) ? 2 : 1;
      if (bottleneck)
        seq->push_back(std::make_shared<Bottleneck>(in, planes, stride, norm, gen));
      else if (cfg.block == Block::nbt1d)
        seq->push_back(std::make_shared<NonBottleneck1D>(in, ch_[i], stride, norm, gen));
      else
        seq->push_back(std::make_shared<BasicBlock>(in, ch_[i], stride, norm, gen));
      in = ch_[i];
    }
    layer[i] = register_module("layer" + std::to_string(i), seq);
  }
  // The reference initialises every encoder convolution's weight with Kaiming normal (fan_out,
  // relu); biases keep PyTorch's default; norms start at weight 1, bias 0.
  visit([&](const std::string&, nn::Module& m) {
    if (auto* c = dynamic_cast<nn::Conv2d*>(&m)) nn::init::kaiming_normal_fan_out(c->weight, gen);
  });
}

Tensor ResNetEncoder::forward_first_conv(const Tensor& x) { return ops::relu(bn1->forward(conv1->forward(x))); }

Tensor ResNetEncoder::forward_layer(int i, const Tensor& x) { return layer[i]->forward(x); }

int64_t ResNetEncoder::channels(int stage) const { return ch_[stage]; }

}  // namespace mtl::models
