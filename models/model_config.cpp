#include "models/model_config.h"

#include <cmath>

#include "core/error.h"

namespace mtl::models {

int64_t ModelConfig::ch(int64_t c) const {
  return std::max<int64_t>(1, static_cast<int64_t>(std::lround(static_cast<double>(c) * width)));
}

void ModelConfig::validate() const {
  MTL_CHECK(encoder == "resnet18" || encoder == "resnet34" || encoder == "resnet50", "model.encoder: '", encoder,
            "' is not supported (expected resnet18, resnet34 or resnet50)");
  MTL_CHECK(block == "basic" || block == "nbt1d", "model.block: '", block, "' (expected basic or nbt1d)");
  MTL_CHECK(context == "ppm" || context == "appm" || context == "none", "model.context: '", context,
            "' (expected ppm, appm or none)");
  nn::parse_upsampling(upsampling);
  nn::parse_norm(norm);
  MTL_CHECK(depth_head == "decoder" || depth_head == "light", "model.depth_head: '", depth_head,
            "' (expected decoder or light)");
  MTL_CHECK(semantic || depth, "model.tasks: at least one of semantic and depth is needed");
  MTL_CHECK(!(depth && !semantic && depth_head == "light"),
            "model.depth_head: light puts the depth head on the semantic decoder, which model.tasks [depth] "
            "does not build; use decoder");
  MTL_CHECK(num_classes >= 1 && num_classes <= 256, "model.num_classes: ", num_classes, " (expected 1..256)");
  MTL_CHECK(width > 0 && width <= 4, "model.width: ", width, " (expected a multiplier in (0, 4])");
  MTL_CHECK(input_height % 32 == 0 && input_width % 32 == 0 && input_height > 0 && input_width > 0,
            "train.input_size: ", input_width, "x", input_height,
            " must be a multiple of 32 in both dimensions (the encoder downsamples by 32)");
}

}  // namespace mtl::models
