#pragma once
// Inference with trained networks, as mtl_eval and mtl_predict do it (docs/evaluation.md): the
// network input made exactly as the evaluation loader makes it; whole-image or sliding-window
// prediction; flip test-time augmentation and ensembles of checkpoints, averaged as class
// probabilities and depth; and the results brought back to each image's own size.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "models/esanet.h"
#include "train/config/config.h"
#include "train/data/dataset_stats.h"
#include "train/data/image_io.h"
#include "train/eval/tta.h"

namespace mtl::train {

// Window offsets along an axis of `length` pixels for windows of `window` pixels (length >=
// window): a stride of window / 3 (two thirds overlap), the last window flush with the end, so
// every pixel is covered. One window when length == window.
std::vector<int> slide_positions(int length, int window);

// ---- prediction ----

struct InferenceOptions {
  Tta tta = Tta::none;
  InferMode mode = InferMode::whole;
  int batch = 8;  // images (whole) or windows (slide) per forward pass
  std::vector<double> scales{0.75, 1.0, 1.25};  // multiscale TTA, relative to train.input_size
};

// One image's result at that image's own size, on the predictor's device.
struct ImagePrediction {
  Tensor semantic;  // [1, C, h, w] logits or probabilities, as NetOutput::probabilities says
  bool probabilities = false;
  Tensor depth;     // [1, 1, h, w] metres
  int width = 0, height = 0;
};

// A network-resolution result (scores [1, C, H, W] and normalised depth [1, 1, H, W]; either may
// be undefined) at width x height: resized bilinearly (align_corners=False) unless the size is
// already that, depth multiplied by `max_depth` into metres.
ImagePrediction resize_prediction(const Tensor& semantic, bool probabilities, const Tensor& depth, double max_depth,
                                  int width, int height);

// An image to predict: RGB (3 channels) and depth in metres (0 = no measurement) of one size.
struct InputImage {
  const ImageU8* rgb = nullptr;
  const ImageF* depth = nullptr;
};

class Predictor {
 public:
  // `models` (one or more, an ensemble) must be built from `cfg` and live on `device`.
  Predictor(Config cfg, const DatasetStats& stats, std::vector<std::shared_ptr<models::ESANet>> models, Device device,
            InferenceOptions options = {});

  const Config& config() const { return cfg_; }
  Device device() const { return device_; }
  const InferenceOptions& options() const { return opt_; }
  bool semantic() const { return cfg_.model.has_task(Task::semantic); }
  bool depth() const { return cfg_.model.has_task(Task::depth); }
  // Forward passes per network input: models times TTA views.
  int passes() const;

  // Normalised network inputs [N, 3, H, W] and [N, 1, H, W] on the device for images of any size,
  // each resized to train.input_size as the evaluation loader does (bilinear RGB, nearest depth).
  std::pair<Tensor, Tensor> network_inputs(const std::vector<InputImage>& images) const;
  // Every model on every TTA view of the batch (tta_forward), combined as NetOutput describes.
  NetOutput forward(const Tensor& rgb, const Tensor& depth) const;

  // Whole mode: each image resized to the network input, the outputs resized bilinearly
  // (align_corners=False) back to its size. Slide mode: predict_slide for images larger than
  // the network input in either direction, whole for the rest.
  std::vector<ImagePrediction> predict(const std::vector<InputImage>& images) const;
  // Windows of the network input size over the image at its own resolution (a side shorter than
  // the input is first stretched to it), probabilities and depth averaged where windows overlap,
  // the result resized back to the image's size when it was stretched. Always probabilities.
  ImagePrediction predict_slide(const InputImage& image) const;

 private:
  std::vector<ImagePrediction> predict_whole(const std::vector<InputImage>& images) const;

  Config cfg_;
  double depth_mean_, depth_std_;
  std::vector<std::shared_ptr<models::ESANet>> models_;
  Device device_;
  InferenceOptions opt_;
};

}  // namespace mtl::train
