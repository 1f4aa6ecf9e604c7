#pragma once
// Parameter groups for the optimiser: each with its own weight decay and learning-rate scale.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace mtl::train {

struct ParamGroup {
  std::string name;                                    // for messages ("decay", "no_decay")
  std::vector<std::pair<std::string, Tensor>> params;  // as from Module::named_parameters()
  double weight_decay = 0.0;
  double lr_scale = 1.0;  // the group's learning rate is lr * lr_scale
};

// Parameters that take no weight decay: tensors of at most one dimension (norm weights and
// biases, biases of convolutions and linear layers, the balancer's 0-d log-variances), and any
// parameter of a normalisation module (a path segment "bn", "bn1", ..., "norm", "groupnorm",
// "..._bn") or whose name contains "log_var".
bool exempt_from_weight_decay(const std::string& name, const Tensor& t);

// The two standard groups, in this order and without empty ones: "decay" (weight_decay) and
// "no_decay" (0), split by exempt_from_weight_decay.
std::vector<ParamGroup> make_param_groups(const std::vector<std::pair<std::string, Tensor>>& named,
                                          double weight_decay);

// Whether parameter `name` lies under module prefix `prefix`: "encoder_rgb" covers
// "encoder_rgb.conv1.weight" but not "encoder_rgb2.x".
bool under_prefix(const std::string& name, const std::string& prefix);

// Fine-tuning: the standard groups without the parameters under a `frozen` prefix (train.freeze),
// each split by `lr_scale` (optim.lr_scale): parameters under a prefix go to the group
// "<group>/<prefix>" with that scale, the longest matching prefix winning. Every prefix must cover
// at least one parameter; otherwise an mtl::Error names the key and lists the top-level modules.
std::vector<ParamGroup> make_param_groups(const std::vector<std::pair<std::string, Tensor>>& named,
                                          double weight_decay, const std::map<std::string, double>& lr_scale,
                                          const std::vector<std::string>& frozen);

}  // namespace mtl::train
