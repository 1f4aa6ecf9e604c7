#pragma once
// The network's configuration, independent of the training configuration (train/ maps its
// `model` section onto this).
#include <cstdint>
#include <string>

#include "nn/layers.h"

namespace mtl::models {

struct ModelConfig {
  std::string encoder = "resnet34";  // resnet18 | resnet34 | resnet50 (bottleneck blocks)
  std::string block = "nbt1d";       // basic | nbt1d
  std::string context = "ppm";       // ppm | appm | none
  std::string upsampling = "learned";  // learned | bilinear | nearest
  std::string norm = "batchnorm";      // batchnorm | groupnorm
  std::string depth_head = "decoder";  // decoder (own decoder) | light (head on the semantic decoder)
  int64_t num_classes = 7;
  double width = 1.0;  // channel multiplier
  bool semantic = true, depth = true;  // model.tasks
  int64_t input_height = 480, input_width = 640;  // training input, for the adaptive context module
  uint64_t seed = 0;

  // Channels at width `width`: round(c * width), at least 1.
  int64_t ch(int64_t c) const;
  // Throws mtl::Error naming the `model.*` key of any invalid value.
  void validate() const;
};

}  // namespace mtl::models
