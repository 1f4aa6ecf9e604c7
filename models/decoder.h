#pragma once
// ESANet's decoder (ESANET.md §4): three modules (conv3x3 + NBt1D blocks + learned x2 upsampling,
// encoder skips added after it), a 3x3 output convolution and two x2 upsamplings to full
// resolution; side outputs (1x1 convs before each module's upsampling) for deep supervision.
#include <vector>

#include "models/conv_bn_act.h"
#include "models/model_config.h"
#include "models/resnet_blocks.h"

namespace mtl::models {

class DecoderModule : public nn::Module {
 public:
  DecoderModule(const ModelConfig& cfg, int64_t in, int64_t out, int64_t side_classes, Generator& gen);
  // Returns the upsampled features (skip added when given) and, when requested and the module has
  // one, the side output computed before upsampling.
  Tensor forward(const Tensor& x, const Tensor& skip, Tensor* side);
  std::shared_ptr<ConvBNAct> conv3x3;
  std::shared_ptr<nn::Sequential> decoder_blocks;
  std::shared_ptr<nn::Upsample> upsample;
  std::shared_ptr<nn::Conv2d> side_output;  // null when side_classes == 0
};

struct DecoderOutput {
  Tensor out;                // full resolution, `classes` channels
  Tensor features;           // the last module's output at 1/4 resolution (for a light head)
  std::vector<Tensor> side;  // 1/8, 1/16, 1/32 (the reference's out_down_8, _16, _32) when asked
};

class Decoder : public nn::Module {
 public:
  // side_outputs: build the deep-supervision convs (semantic decoder only).
  Decoder(const ModelConfig& cfg, int64_t in, int64_t classes, bool side_outputs, Generator& gen);
  // skips: the fused encoder features at 1/16, 1/8, 1/4 (after the skip projections).
  DecoderOutput forward(const Tensor& x, const std::vector<Tensor>& skips, bool want_side);
  std::shared_ptr<DecoderModule> module[3];
  std::shared_ptr<nn::Conv2d> conv_out;
  std::shared_ptr<nn::Upsample> upsample1, upsample2;
};

// A light depth head on the semantic decoder's features: 3x3 conv to one channel and two x2
// upsamplings (the sigmoid is applied by the model).
class LightDepthHead : public nn::Module {
 public:
  LightDepthHead(const ModelConfig& cfg, int64_t in, Generator& gen);
  Tensor forward(const Tensor& features) override;
  std::shared_ptr<nn::Conv2d> conv_out;
  std::shared_ptr<nn::Upsample> upsample1, upsample2;
};

}  // namespace mtl::models
