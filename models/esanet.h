#pragma once
// The multi-task ESANet (ESANET.md §4.4 plus a depth branch): RGB and depth ResNet encoders with
// SE fusion into the RGB stream at five points (or, for model.modality rgb or depth, one encoder
// of that input), the context module, the semantic decoder with deep supervision, and a depth
// decoder of the same design (or a light head on the semantic decoder) ending in a sigmoid:
// normalised depth in [0, 1].
#include <map>
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
  // The dtype of the activations: F32 (the default) or BF16, mixed precision as autocast's: the
  // inputs are cast to bfloat16, every layer computes in bfloat16 from float32 master weights
  // (normalisation statistics and parameters stay float32), and the outputs (logits, side
  // outputs, the depth head before its sigmoid) come back as float32 for the losses. Parameters
  // and checkpoints are float32 either way.
  void set_compute_dtype(DType d);
  DType compute_dtype() const { return compute_dtype_; }
  // Top-level modules with their parameter counts, in construction order (for --summary).
  std::vector<std::pair<std::string, int64_t>> summary() const;

  std::shared_ptr<ResNetEncoder> encoder_rgb, encoder_depth;  // model.modality rgbd
  std::shared_ptr<ResNetEncoder> encoder;                     // model.modality rgb or depth
  std::shared_ptr<SEFusion> se_layer[5];                      // rgbd
  std::shared_ptr<nn::Sequential> skip_layer[4];  // [1..3]
  std::shared_ptr<ContextModule> context_module;  // null for context none
  std::shared_ptr<Decoder> decoder, depth_decoder;
  std::shared_ptr<LightDepthHead> depth_head;
  // With model.pretrained_classes: the 1x1 convolution (bias) from the decoder's pretrained
  // classes to num_classes, applied to the full-resolution logits and to each side output;
  // state-dict names class_adapter.weight [num_classes, pretrained_classes, 1, 1] and
  // class_adapter.bias [num_classes]. Null otherwise.
  std::shared_ptr<nn::Conv2d> class_adapter;

  // Initialises class_adapter from a class map: new class n is the sum of the pretrained classes
  // map[n] (weight 1, bias 0); classes the map does not name keep their random initialisation.
  // Throws mtl::Error for an id out of range or when the model has no adapter.
  void init_class_adapter(const std::map<int, std::vector<int>>& map);

 private:
  ModelConfig cfg_;
  DType compute_dtype_ = DType::f32;
};

}  // namespace mtl::models
