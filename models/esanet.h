#pragma once
// The multi-task ESANet (ESANET.md §4.4 plus a depth branch): RGB and depth ResNet encoders with
// SE fusion into the RGB stream at five points (or, for model.modality rgb or depth, one encoder
// of that input), the context module, the semantic decoder with deep supervision, and a depth
// decoder of the same design (or a light head on the semantic decoder) ending in a sigmoid:
// normalised depth in [0, 1].
#include <memory>
#include <string>
#include <vector>

#include "models/context_module.h"
#include "models/decoder.h"
#include "models/model_config.h"
#include "models/resnet.h"
#include "models/se_fusion.h"

namespace mtl::models {

struct ESANetOutput {
  Tensor semantic;           // [N, classes, H, W] logits (undefined without the semantic task)
  std::vector<Tensor> side;  // training mode: side logits at 1/8, 1/16, 1/32
  Tensor depth;              // [N, 1, H, W] in [0, 1] (undefined without the depth task)
};

class ESANet : public nn::Module {
 public:
  explicit ESANet(const ModelConfig& cfg, const BuildOptions& build = {});
  // rgb [N, 3, H, W], depth [N, 1, H, W]; H and W multiples of 32. A single-modality model reads
  // only its own input (the other may be undefined).
  ESANetOutput forward(const Tensor& rgb, const Tensor& depth);
  const ModelConfig& config() const { return cfg_; }
  // Top-level modules with their parameter counts, in construction order (for --summary).
  std::vector<std::pair<std::string, int64_t>> summary() const;

  std::shared_ptr<ResNetEncoder> encoder_rgb, encoder_depth;  // model.modality rgbd
  std::shared_ptr<ResNetEncoder> encoder;                     // model.modality rgb or depth
  std::shared_ptr<SEFusion> se_layer[5];                      // rgbd
  std::shared_ptr<nn::Sequential> skip_layer[4];  // [1..3]
  std::shared_ptr<ContextModule> context_module;  // null for context none
  std::shared_ptr<Decoder> decoder, depth_decoder;
  std::shared_ptr<LightDepthHead> depth_head;

 private:
  ModelConfig cfg_;
};

}  // namespace mtl::models
