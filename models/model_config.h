#pragma once
// The network's choices (the `model` section of a run's configuration, which embeds this struct):
// typed, with their names for files and messages, and one validation rule for each.
#include <cstdint>
#include <string>
#include <vector>

#include "core/enum_names.h"
#include "nn/layers.h"

namespace mtl::models {

enum class Encoder { resnet18, resnet34, resnet50 };
enum class Block { basic, nbt1d };
enum class Context { ppm, appm, none };
enum class DepthHead { decoder, light };
enum class Task { semantic, depth };
enum class Modality { rgbd, rgb, depth };
MTL_ENUM_NAMES(Encoder, "resnet18", "resnet34", "resnet50")
MTL_ENUM_NAMES(Block, "basic", "nbt1d")
MTL_ENUM_NAMES(Context, "ppm", "appm", "none")
MTL_ENUM_NAMES(DepthHead, "decoder", "light")
MTL_ENUM_NAMES(Task, "semantic", "depth")
MTL_ENUM_NAMES(Modality, "rgbd", "rgb", "depth")

// Class ids must fit the confusion matrix (ops::ConfusionMatrix) and 8-bit label PNGs.
constexpr int kMaxClasses = 256;
// Channel multipliers above 4 would be ResNets no one trains; the limit keeps typos (40 for 0.4)
// from allocating hundreds of gigabytes.
constexpr double kMaxWidth = 4.0;

struct ModelConfig {
  Encoder encoder = Encoder::resnet34;  // resnet50 always uses bottleneck blocks
  Block block = Block::nbt1d;
  Context context = Context::ppm;
  int num_classes = 7;
  nn::UpsampleMode upsampling = nn::UpsampleMode::learned;
  nn::NormKind norm = nn::NormKind::batchnorm;
  double width = 1.0;  // channel multiplier of encoder and decoder, in (0, kMaxWidth]
  std::vector<Task> tasks{Task::semantic, Task::depth};
  DepthHead depth_head = DepthHead::decoder;  // decoder (its own) | light (head on the semantic decoder)
  // rgbd: both encoders with SE fusion; rgb or depth: that input alone through one encoder named
  // "encoder" (ESANet's ESANetOneModality), the other input unused.
  Modality modality = Modality::rgbd;
  // When non-zero, the semantic decoder ends in this many classes (a pretrained head kept as it
  // is) and a learned 1x1 convolution, ESANet::class_adapter, maps them to num_classes.
  int pretrained_classes = 0;
  // Read by the trainer's --init-from load, not by the network: the least fraction of the
  // encoders' tensors a pretrained file must provide, else the load is an error.
  double init_min_fraction = 0.5;
  // Read by the trainer of a data-parallel run, not by the network: BatchNorm statistics over the
  // global batch (every process's share) rather than each process's own.
  bool sync_bn = false;

  bool has_task(Task t) const;
  // Channels at width `width`: round(c * width), at least 1.
  int64_t ch(int64_t c) const;
  // Each invalid value or combination: the `model.*` key at fault and what is wrong with it.
  struct Problem {
    std::string key, message;
  };
  std::vector<Problem> problems() const;
  // Throws one mtl::Error listing problems() as "model.<key>: <message>", when there are any.
  void validate() const;
  bool operator==(const ModelConfig&) const = default;
};

// What building a network needs besides its configuration.
struct BuildOptions {
  // The training input; the adaptive context module (appm) sizes its bins from it. Both sides
  // must be multiples of 32 (the encoder downsamples by 32).
  int64_t input_height = 480, input_width = 640;
  uint64_t seed = 0;  // initialisation
};

}  // namespace mtl::models
