#pragma once
// Test-time augmentation and ensembles at network resolution: every model on every view of a batch
// (the input itself, its mirror image, the input scaled), each pass's class probabilities and
// depth brought back to the input's view and size, and averaged. Shared by validation during
// training and by the Predictor behind mtl_eval and mtl_predict.
#include <vector>

#include "core/tensor.h"
#include "models/esanet.h"
#include "train/config/config.h"

namespace mtl::train {

struct TtaOptions {
  Tta tta = Tta::none;
  std::vector<double> scales{0.75, 1.0, 1.25};  // multiscale: relative to the input size
};

// One augmented view: the input scaled to height x width (its own size when unscaled) and
// mirrored or not.
struct TtaView {
  int64_t height = 0, width = 0;
  bool flip = false;
};

// The views of `o` for an input of height x width, the unaugmented one first when there is one.
// A scaled side is round(scale * side) to the nearest multiple of 32, at least 32.
std::vector<TtaView> tta_views(const TtaOptions& o, int64_t height, int64_t width);

// The network-resolution result of one batch.
struct NetOutput {
  // [N, C, H, W]: the logits when a single forward pass made them (one model, no TTA), else the
  // mean of the passes' softmax probabilities. Undefined without the semantic task.
  Tensor semantic;
  bool probabilities = false;
  Tensor depth;  // [N, 1, H, W] normalised depth in [0, 1] (mean over passes); undefined without depth
};

// Every model (evaluation mode expected) on every view of rgb [N, 3, H, W] and depth [N, 1, H, W],
// combined as NetOutput describes. Scaled views: RGB resized bilinearly, depth by nearest
// neighbour (as the loader resamples them), the outputs resized bilinearly back to H x W.
// `first`, when given, receives the first model's raw output on the first view (for a loss).
NetOutput tta_forward(const std::vector<models::ESANet*>& models, const Tensor& rgb, const Tensor& depth,
                      const TtaOptions& o, models::ESANetOutput* first = nullptr);

}  // namespace mtl::train
